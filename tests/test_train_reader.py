"""tools/train_reader.py on a tiny slice: examples built the way the reader is used, a few steps,
an interrupted run that resumes to the very weights of an uninterrupted one, weight averages."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = ROOT / "tools" / "train_reader.py"
sys.path.insert(0, str(ROOT / "tools"))


def tiny_squad(path) -> None:
    def para(context, qas):
        return {"context": context, "qas": qas}

    def qa(i, question, answer=None, context=""):
        if answer is None:
            return {"id": f"q{i}", "question": question, "answers": [], "is_impossible": True}
        return {"id": f"q{i}", "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}],
                "is_impossible": False}

    c1 = "The lighthouse at Carrow Point was built in 1871 by the harbour board. It is 31 metres tall."
    c2 = "Its lamp was converted to electricity in 1934. The keeper's cottage now houses a museum of shipwrecks."
    c3 = "Bramble Island lies two miles offshore. Puffins nest on its northern cliffs every spring."
    data = {"version": "v2.0", "data": [
        {"title": "Carrow", "paragraphs": [
            para(c1, [qa(1, "When was the lighthouse at Carrow Point built?", "1871", c1), qa(2, "How tall is the lighthouse?", "31 metres", c1)]),
            para(c2, [qa(3, "When was the lamp converted to electricity?", "1934", c2),
                      qa(4, "Who paid for the museum?")]),
        ]},
        {"title": "Bramble", "paragraphs": [para(c3, [qa(5, "What nests on the cliffs of Bramble Island?", "Puffins", c3)])]},
    ]}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f)


def test_examples_pair_questions_with_passages_that_do_and_do_not_answer(tmp_path):
    from train_reader import build_examples

    tiny_squad(tmp_path / "tiny.json.gz")
    examples = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0)
    answers = [e for e in examples if e["kind"] == "answer"]
    assert len(answers) == 4
    for e in answers:
        assert e["p"][e["s"] : e["e"]] in {"1871", "31 metres", "1934", "Puffins"}
    negatives = [e for e in examples if e["s"] < 0]
    assert {e["kind"] for e in negatives} >= {"bm25", "unanswerable"}
    own = {e["q"]: e["p"][e["s"] : e["e"]] for e in answers}
    for e in negatives:  # a negative never holds the answer of its own question
        assert e["q"] not in own or own[e["q"]] not in e["p"]


def test_swapped_questions_ask_for_a_name_or_number_their_passage_does_not_hold(tmp_path):
    from train_reader import build_examples, swappable

    tiny_squad(tmp_path / "tiny.json.gz")
    examples = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=0.0, neg_article=0.0, chunk_size=120, overlap=0,
                              neg_swap=1.0)
    answers = {e["p"]: e for e in examples if e["kind"] == "answer"}
    swaps = [e for e in examples if e["kind"] == "swap"]
    # only the questions naming something their passage holds ("Carrow Point", "Bramble Island") are swapped
    assert len(swaps) == 2 and all(e["s"] == -1 for e in swaps)
    for e in swaps:
        original = answers[e["p"]]["q"]
        changed = [(a.group(), b.group()) for a, b in zip(swappable(original), swappable(e["q"])) if a.group() != b.group()]
        assert len(changed) == 1, (original, e["q"])
        old, new = changed[0]
        assert old.lower() in e["p"].lower() and new.lower() not in e["p"].lower()
    # with no swaps asked for, the seeded order is the one earlier runs trained on
    before = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0)
    again = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0,
                           neg_swap=0.0)
    assert before == again


def test_twisted_questions_ask_the_opposite_of_what_their_passage_says(tmp_path):
    from train_reader import build_examples, negated, opposite

    passage = "Warsaw is the largest city in Poland. It was first mentioned in 1313."
    assert opposite("What is the largest city in Poland?", passage) == ["What is the smallest city in Poland?"]
    # an opposite the passage also says is no twist
    assert opposite("What is the largest city?", passage + " Kraków is smaller; the smallest is Wąchock.") == []
    assert negated("When did Luther describe Erfurt as a beerhouse?") == "When did Luther not describe Erfurt as a beerhouse?"
    assert negated("Which team did not score?") is None  # it already says no
    tiny_squad(tmp_path / "tiny.json.gz")
    examples = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=0.0, neg_article=0.0, chunk_size=120, overlap=0,
                              neg_twist=1.0)
    answers = {e["p"]: e["q"] for e in examples if e["kind"] == "answer"}
    twists = [e for e in examples if e["kind"] == "twist"]
    assert twists and all(e["s"] == -1 and e["q"] != answers[e["p"]] for e in twists)
    assert all(" not " in e["q"] or set(e["q"].split()) - set(answers[e["p"]].split()) for e in twists)
    # with no twists asked for, the seeded order is the one earlier runs trained on
    before = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0)
    again = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0,
                           neg_twist=0.0)
    assert before == again


def test_pronominal_says_what_the_earlier_turn_named_as_a_pronoun():
    from train_reader import pronominal

    paragraph = "Luther went to Erfurt. He studied law there, and his father wanted him to be a lawyer."
    assert pronominal("How did Luther describe the University of Erfurt?", "Where did Martin Luther go to school? Erfurt",
                      paragraph) == "How did he describe the University of Erfurt?"
    assert pronominal("When was Kinect announced?", "How did Microsoft describe Kinect? a controller", "") == "When was it announced?"
    assert pronominal("What was Marie Curie's first discovery?", "Where was Marie Curie born? Warsaw",
                      "She was a physicist. She won two Nobel Prizes; her work mattered.") == "What was her first discovery?"
    # a phrase that goes on is not replaced in part, and nothing shared is nothing replaced
    assert pronominal("How tall is the Bank of America Tower?", "Which bank was founded in 1904?", "") is None
    assert pronominal("How tall is the lighthouse?", "What nests on Bramble Island? Puffins", "") is None


def test_history_reads_a_question_after_the_paragraphs_previous_turn(tmp_path):
    from train_reader import build_examples

    tiny_squad(tmp_path / "tiny.json.gz")
    plain = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0)
    examples = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0,
                              history=1.0)
    asked = {e["q"] for e in examples}
    # the second question of a paragraph comes after the first and its answer (a question the
    # earlier turn had no answer to comes after that question alone)
    second = [q for q in asked if q.startswith("When was the lighthouse at Carrow Point built? 1871 ")]
    assert second and all(q.endswith(("How tall is the lighthouse?", "How tall is it?")) for q in second)
    assert any(q.startswith("When was the lamp converted to electricity? 1934 ") and q.endswith("Who paid for the museum?") for q in asked)
    # first questions have no earlier turn; spans still point at the answers
    assert "When was the lighthouse at Carrow Point built?" in asked
    assert {e["p"][e["s"] : e["e"]] for e in examples if e["kind"] == "answer"} == {"1871", "31 metres", "1934", "Puffins"}
    assert len(examples) == len(plain)
    assert build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=1.0, chunk_size=120, overlap=0,
                          history=0.0) == plain  # none asked for: the seeded order earlier runs trained on


def test_groups_keep_a_question_with_its_negatives_in_one_batch(tmp_path):
    from train_reader import build_examples, length_buckets

    tiny_squad(tmp_path / "tiny.json.gz")
    examples = build_examples(tmp_path / "tiny.json.gz", seed=1, neg_bm25=1.0, neg_article=0.0, chunk_size=120, overlap=0,
                              group=2)
    groups: dict[int, list[dict]] = {}
    for e in examples:
        if "g" in e:
            groups.setdefault(e["g"], []).append(e)
    assert len(groups) == 4  # every answerable question
    for members in groups.values():
        answer = [e for e in members if e["kind"] == "answer"]
        assert len(answer) == 1 and 2 <= len(members) <= 3
        said = answer[0]["p"][answer[0]["s"] : answer[0]["e"]]
        assert all(e["kind"] == "bm25" and said not in e["p"] and e["q"] == answer[0]["q"] for e in members if e is not answer[0])
    assert not [e for e in examples if e["kind"] == "bm25" and "g" not in e]  # BM25 negatives come in groups only
    for size in (3, 2):  # a group of 3 does not fit a batch of 2: it is a batch of its own, never split or empty
        batches = length_buckets(examples, size, seed=1)
        assert sorted(j for batch in batches for j in batch) == list(range(len(examples)))
        for batch in batches:
            assert batch and (len(batch) <= size or len({examples[j].get("g") for j in batch}) == 1)
            for g in {examples[j].get("g") for j in batch} - {None}:
                assert sum(examples[j].get("g") == g for j in batch) == len(groups[g])


def test_the_shared_norm_loss_wants_the_answer_above_every_span_of_its_group():
    import torch

    from train_reader import shared_norm_loss

    class Window:
        sequence_ids = [None, 0, None, 1, 1, 1, None]

    batch = [{"g": 7}, {"g": 7}, {"q": "alone"}]
    starts, ends = [4, 0, 0], [5, 0, 0]
    right = torch.full((3, 7), -5.0)
    right[0, 4] = right[1, 3] = 3.0
    wrong = right.clone()
    wrong[1, 3] = 6.0  # a span of the negative outscores the answer
    loss_right = shared_norm_loss(right, right, batch, [Window()] * 3, starts, ends)
    loss_wrong = shared_norm_loss(wrong, wrong, batch, [Window()] * 3, starts, ends)
    assert loss_right is not None and loss_wrong > loss_right
    right[0, 0] = 50.0  # [CLS] and the question are not spans: they do not count
    assert torch.isclose(shared_norm_loss(right, right, batch, [Window()] * 3, starts, ends), loss_right)
    assert shared_norm_loss(right, right, [{"q": "a"}, {"q": "b"}, {"q": "c"}], [Window()] * 3, starts, ends) is None


def test_the_shipped_reader_loads_back_into_torch_for_further_training():
    import numpy as np
    import onnxruntime as ort
    import torch

    from assistant.answer.reader import MODEL_FILE, TOKENIZER_FILE, Windows, bundled_reader_dir, feeds

    from train_reader import initial_model, weights_from_onnx

    folder = bundled_reader_dir()
    model = initial_model(str(folder)).eval()
    state = weights_from_onnx(folder / MODEL_FILE)
    assert set(model.state_dict()) - set(state) <= {"bert.embeddings.position_ids"}  # every weight comes back
    windows = Windows(folder / TOKENIZER_FILE, 192, 64)
    passage = "The lighthouse at Carrow Point was built in 1871 by the harbour board. It is 31 metres tall."
    encs = [per[0] for per in windows.encode_each(["When was the lighthouse built?", "How tall is it?"], [passage, passage])]
    inputs = feeds(encs, ["input_ids", "attention_mask", "token_type_ids"])
    onnx_start, onnx_end = ort.InferenceSession(str(folder / MODEL_FILE)).run(None, inputs)
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    # the int8 model also quantises activations, so logits differ a little, the answer not at all
    assert np.abs(out.start_logits.numpy() - onnx_start).max() < 1.0
    assert (out.start_logits.numpy().argmax(1) == onnx_start.argmax(1)).all()
    assert (out.end_logits.numpy().argmax(1) == onnx_end.argmax(1)).all()


def test_average_weighs_the_weights_of_runs_and_exported_readers(tmp_path):
    import numpy as np
    from safetensors.numpy import load_file

    from assistant.answer.reader import bundled_reader_dir

    from train_reader import initial_model, main, window_config

    for name, init in (("shipped", str(bundled_reader_dir())), ("base", "")):
        initial_model(init).save_pretrained(tmp_path / name / "final")  # a finished run's folder
        (tmp_path / name / "final" / "training.json").write_text(json.dumps({"steps": len(name)}))
    main(["average", str(tmp_path / "shipped"), str(tmp_path / "base"), "--weights", "0.25", "0.75", "--out", str(tmp_path / "soup")])
    a, b, soup = (load_file(tmp_path / n / "final" / "model.safetensors") for n in ("shipped", "base", "soup"))
    assert all(np.allclose(soup[k], 0.25 * a[k] + 0.75 * b[k], atol=1e-6) for k in a if k != "bert.embeddings.position_ids")
    record = json.loads((tmp_path / "soup" / "final" / "training.json").read_text())["average"]
    assert [(r["weight"], r["training"]["steps"]) for r in record] == [(0.25, 7), (0.75, 4)]
    # an exported reader is read back through its int8 weights, which the run above was made from
    main(["average", str(bundled_reader_dir()), str(tmp_path / "shipped"), "--out", str(tmp_path / "same")])
    same = load_file(tmp_path / "same" / "final" / "model.safetensors")
    assert all(np.allclose(same[k], a[k], atol=1e-6) for k in a if k != "bert.embeddings.position_ids")
    # its export takes the windows its members were trained with
    shipped = json.loads((bundled_reader_dir() / "reader.json").read_text())
    averaged = json.loads((tmp_path / "same" / "final" / "training.json").read_text())
    assert window_config(averaged)["max_length"] == shipped["max_length"] and window_config(averaged)["stride"] == shipped["stride"]
    with pytest.raises(SystemExit, match="no configuration"):
        window_config(record[0]["training"])
    with pytest.raises(SystemExit, match="summing to 1"):
        main(["average", str(tmp_path / "shipped"), str(tmp_path / "base"), "--weights", "0.5", "0.6", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="neither a finished run"):
        main(["average", str(tmp_path), "--out", str(tmp_path / "x")])


def _train(tmp_path, out, *extra):
    cmd = [sys.executable, str(SCRIPT), "train", "--data", str(tmp_path / "tiny.json.gz"), "--out", str(out),
           "--batch", "2", "--chunk-size", "120", "--overlap", "0", "--save-every", "1", "--threads", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    import torch
    from safetensors.torch import load_file

    tiny_squad(tmp_path / "tiny.json.gz")
    whole = _train(tmp_path, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = _train(tmp_path, tmp_path / "parts", "--stop-after", "2")
    assert first.returncode == 0 and "stopped at step 2" in first.stderr, first.stderr[-2000:]
    assert not (tmp_path / "parts" / "final").exists()
    second = _train(tmp_path, tmp_path / "parts")
    assert second.returncode == 0 and "resuming at step 2" in second.stderr, second.stderr[-2000:]
    assert "ex_s=" in second.stderr and "loss=" in second.stderr  # the progress bar shows both
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(tmp_path / "parts" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    changed = _train(tmp_path, tmp_path / "parts", "--lr", "1e-3")
    assert changed.returncode != 0 and "other arguments" in changed.stderr


@pytest.mark.slow
def test_a_run_goes_on_from_an_exported_reader(tmp_path):
    from assistant.answer.reader import META_FILE, bundled_reader_dir

    tiny_squad(tmp_path / "tiny.json.gz")
    run = _train(tmp_path, tmp_path / "more", "--init", str(bundled_reader_dir()), "--examples", "4", "--neg-swap", "1")
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads((tmp_path / "more" / "final" / "training.json").read_text())
    shipped = json.loads((bundled_reader_dir() / META_FILE).read_text())["training"]
    assert record["config"]["init"] and record["init"] == shipped  # the card can give the whole history
    bad = _train(tmp_path, tmp_path / "bad", "--init", str(tmp_path))
    assert bad.returncode != 0 and "reader.onnx" in bad.stderr
    grouped = _train(tmp_path, tmp_path / "grouped", "--init", str(bundled_reader_dir()), "--group", "1", "--batch", "4", "--stop-after", "1")
    assert grouped.returncode == 0 and "stopped at step 1" in grouped.stderr, grouped.stderr[-2000:]
    again = _train(tmp_path, tmp_path / "grouped", "--init", str(bundled_reader_dir()), "--group", "1", "--batch", "4")
    assert again.returncode == 0 and "resuming at step 1" in again.stderr, again.stderr[-2000:]
    assert json.loads((tmp_path / "grouped" / "final" / "training.json").read_text())["config"]["group"] == 1


def test_the_distillation_loss_is_zero_only_where_the_student_matches_its_teacher():
    from types import SimpleNamespace

    import torch

    from train_reader import distillation_loss

    torch.manual_seed(0)
    teacher = SimpleNamespace(start_logits=torch.randn(2, 6), end_logits=torch.randn(2, 6))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    same = SimpleNamespace(start_logits=teacher.start_logits.clone(), end_logits=teacher.end_logits.clone())
    assert distillation_loss(same, teacher, mask, 2.0) < 1e-6
    same.start_logits[1, 5] = 40.0  # padding is not a token the teacher weighs
    assert distillation_loss(same, teacher, mask, 2.0) < 1e-6
    other = SimpleNamespace(start_logits=teacher.start_logits.flip(1), end_logits=teacher.end_logits)
    assert distillation_loss(other, teacher, mask, 2.0) > 0.01


def test_each_cut_layer_learns_the_teacher_layer_it_stands_in_for():
    import torch

    from train_reader import hidden_loss, stand_ins

    assert stand_ins(3, 6, "0,2,4") == [1, 3, 5]  # layer 0 stands in for 0 and 1, layer 2 for 2 and 3...
    assert stand_ins(4, 6, "0,2,4,5") == [1, 3, 4, 5]
    assert stand_ins(3, 6) == [1, 3, 5] and stand_ins(2, 6) == [2, 5]  # spread evenly when the cut is not known
    assert stand_ins(3, 3, "0,4,8") == [0, 1, 2]  # or was of a deeper reader than the teacher
    torch.manual_seed(0)
    teacher = tuple(torch.randn(2, 5, 4) for _ in range(7))  # embeddings and six layers
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    student = [teacher[0], teacher[2].clone(), teacher[4].clone(), teacher[6].clone()]
    assert hidden_loss(student, teacher, [1, 3, 5], mask) < 1e-9
    student[2][1, 4] += 100.0  # padding is not a token it learns
    assert hidden_loss(student, teacher, [1, 3, 5], mask) < 1e-9
    assert hidden_loss(student, teacher, [0, 2, 4], mask) > 0.5  # matched to the wrong layers


@pytest.mark.slow
def test_a_reader_distilled_to_fewer_layers_trains_averages_and_exports(tmp_path):
    import numpy as np
    import onnx
    from safetensors.numpy import load_file

    from assistant.answer.reader import META_FILE, MODEL_FILE, Reader, bundled_reader_dir

    from train_reader import layer_count, main

    shipped = str(bundled_reader_dir())
    tiny_squad(tmp_path / "tiny.json.gz")
    run = _train(tmp_path, tmp_path / "small", "--init", shipped, "--layers", "0,2,4", "--teacher", shipped, "--hidden", "1",
                 "--examples", "4")
    assert run.returncode == 0, run.stderr[-2000:]
    state = load_file(tmp_path / "small" / "final" / "model.safetensors")
    assert layer_count(state) == 3
    record = json.loads((tmp_path / "small" / "final" / "training.json").read_text())
    assert record["config"]["layers"] == "0,2,4" and record["config"]["hidden"] == 1.0
    assert record["teacher"] == json.loads((bundled_reader_dir() / META_FILE).read_text())["training"]
    main(["average", str(tmp_path / "small"), str(tmp_path / "small"), "--out", str(tmp_path / "soup")])
    soup = load_file(tmp_path / "soup" / "final" / "model.safetensors")
    assert all(np.allclose(soup[k], state[k], atol=1e-6) for k in state)
    with pytest.raises(SystemExit, match="one depth"):
        main(["average", str(tmp_path / "small"), shipped, "--out", str(tmp_path / "mixed")])
    main(["export", "--out", str(tmp_path / "small"), "--to", str(tmp_path / "exported")])
    graph = onnx.load(str(tmp_path / "exported" / MODEL_FILE)).graph
    assert sum(node.op_type in ("Attention", "QAttention") for node in graph.node) == 3
    [reading] = Reader(tmp_path / "exported").read("How tall is the lighthouse?", ["The lighthouse is 31 metres tall."])
    assert reading is not None and 0 <= reading.start < reading.end <= len("The lighthouse is 31 metres tall.")
    # it goes on as a three-layer reader, and cannot keep a layer it does not have
    more = _train(tmp_path, tmp_path / "more", "--init", str(tmp_path / "exported"), "--examples", "2")
    assert more.returncode == 0, more.stderr[-2000:]
    assert layer_count(load_file(tmp_path / "more" / "final" / "model.safetensors")) == 3
    for layers in ("0,4", "2,1", "first"):
        bad = _train(tmp_path, tmp_path / "bad", "--init", str(tmp_path / "exported"), "--layers", layers)
        assert bad.returncode != 0 and "--layers takes increasing indices of the 3 layers" in bad.stderr
    alone = _train(tmp_path, tmp_path / "alone", "--init", str(tmp_path / "exported"), "--hidden", "1")
    assert alone.returncode != 0 and "--hidden needs --teacher" in alone.stderr
