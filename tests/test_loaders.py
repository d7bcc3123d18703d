"""Loaders for PDF, DOCX and HTML, page numbers in citations, and hostile files contained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant import Assistant, Settings
from assistant.ingest.formats import LOADERS
from assistant.ingest.loaders import load_docx, load_html, load_pdf
from assistant.ingest.scan import load_file, page_at, scan


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per list item on each page."""
    def esc(s):
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    objs = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font_no = 3 + 2 * n
    for i, lines in enumerate(pages):
        stream = "BT /F1 11 Tf 14 TL 72 740 Td " + " ".join(f"({esc(line)}) Tj T*" for line in lines) + " ET"
        resources = f"/Resources << /Font << /F1 {font_no} 0 R >> >>"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {resources} /Contents {4 + 2 * i} 0 R >>".encode())
        data = stream.encode("latin-1")
        objs.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


REPORT = [
    ["Annual report of the Kallio engineering firm.", "The firm was founded in 1952 in Tampere."],
    ["Weather delayed two projects in the spring.", "Heavy snow closed the site for three weeks."],
    ["The bridge over the river Vantaa was completed in 1987.", "It carries four lanes of traffic and a tram line."],
]


def write_docx(path: Path, paragraphs: list[str]) -> None:
    from docx import Document

    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(str(path))


def test_pdf_text_keeps_page_starts(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(REPORT))
    loaded = load_pdf(path)
    assert len(loaded.pages) == 3 and loaded.pages[0] == 0
    for number, lines in enumerate(REPORT, 1):
        for line in lines:
            at = loaded.text.index(line)
            assert page_at(loaded.pages, at) == number


def test_pdf_citation_carries_its_page_and_stays_verbatim(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(make_pdf(REPORT))
    bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index"))
    answer = bot.ask("When was the bridge over the river Vantaa completed?")
    assert not answer.abstained
    top = answer.citations[0]
    text = bot.document_text("report.pdf")
    assert text[top.start : top.end] == top.quote
    assert "Vantaa" in top.quote
    assert top.page == 3 and top.label == "report.pdf p. 3"
    assert answer.to_dict()["citations"][0]["page"] == 3
    # A chunk carries the page it starts on (this short report is one chunk, from page 1).
    pages = bot.index.document_pages("report.pdf")
    metadatas = bot.index.chunks.get(include=["metadatas"])["metadatas"]
    assert metadatas and all(m["page"] == page_at(pages, m["start"]) for m in metadatas)


def test_text_citations_have_no_page(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The harbour crane lifts forty tonnes. It was painted red in 2001.", encoding="utf-8")
    bot = Assistant(Settings(docs_dir=docs, index_dir=tmp_path / "index"))
    answer = bot.ask("How much does the harbour crane lift?")
    assert answer.citations and answer.citations[0].page is None
    assert "page" not in answer.to_dict()["citations"][0]
    assert answer.citations[0].label == "note.txt"


def test_docx_paragraphs_in_order(tmp_path):
    path = tmp_path / "memo.docx"
    write_docx(path, ["Memo to staff.", "The canteen opens at eight.", "Parking moves to level two."])
    text = load_docx(path)
    assert text.index("Memo to staff.") < text.index("The canteen opens at eight.") < text.index("Parking moves to level two.")


def test_html_main_text_without_navigation_scripts_or_styles(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        """<html><head><title>T</title><style>body { color: red }</style>
        <script>var tracking = "SCRIPT_TEXT";</script></head>
        <body><nav><a href="/">Home NAV_TEXT</a></nav><header>HEADER_TEXT</header>
        <main><h1>Lighthouse</h1><p>The lighthouse at Porkkala was lit in 1890.</p>
        <p>Its lamp is <b>visible</b> for twenty miles.</p></main>
        <footer>FOOTER_TEXT</footer></body></html>""",
        encoding="utf-8",
    )
    text = load_html(path)
    assert "The lighthouse at Porkkala was lit in 1890." in text
    assert "Its lamp is visible for twenty miles." in text
    for noise in ("SCRIPT_TEXT", "NAV_TEXT", "HEADER_TEXT", "FOOTER_TEXT", "color: red"):
        assert noise not in text


def test_every_format_is_registered_and_loads_through_load_file(tmp_path):
    assert {".txt", ".md", ".pdf", ".docx", ".html", ".htm"} <= set(LOADERS)
    (tmp_path / "a.pdf").write_bytes(make_pdf([["Alpha page one."], ["Alpha page two."]]))
    write_docx(tmp_path / "b.docx", ["Beta paragraph."])
    (tmp_path / "c.htm").write_text("<p>Gamma paragraph.</p>", encoding="utf-8")
    assert load_file(tmp_path / "a.pdf").pages == (0, len("Alpha page one.\n\n"))
    assert load_file(tmp_path / "b.docx").text == "Beta paragraph."
    assert load_file(tmp_path / "c.htm").text == "Gamma paragraph."


def test_hostile_files_are_reported_and_skipped_and_the_rest_indexed(tmp_path):
    from pypdf import PdfWriter

    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("Outside secret.", encoding="utf-8")
    good_pdf = make_pdf([["A good PDF about owls."]])
    (docs / "good.pdf").write_bytes(good_pdf)
    (docs / "good.txt").write_text("A good text about herons.", encoding="utf-8")
    (docs / "corrupt.pdf").write_bytes(good_pdf[:150])
    (docs / "garbage.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    writer = PdfWriter(clone_from=str(docs / "good.pdf"))
    writer.encrypt("secret", algorithm="RC4-128")
    writer.write(str(docs / "encrypted.pdf"))
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "empty.docx").write_bytes(b"")
    (docs / "fake.docx").write_text("not a zip at all", encoding="utf-8")
    (docs / "notpdf.pdf").write_text("plain words in a pdf name", encoding="utf-8")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (docs / "binary.html").write_bytes(b"\x00\x01\x02<p>x</p>")
    with open(docs / "huge.txt", "wb") as f:  # sparse: 200 MB on paper, nothing on disk
        f.truncate(200 * 1024 * 1024)
    (docs / "leak.txt").symlink_to(outside / "secret.txt")
    (docs / "up").symlink_to("..")
    (docs / "loop").symlink_to(docs)
    found, skipped = scan(docs)
    assert sorted(d.source for d in found) == ["good.pdf", "good.txt"]
    reasons = {s.path: s.reason for s in skipped}
    expected = {
        "corrupt.pdf": "corrupt",
        "garbage.pdf": "",
        "encrypted.pdf": "encrypted",
        "empty.pdf": "empty",
        "empty.docx": "empty",
        "fake.docx": "docx",
        "notpdf.pdf": "not a PDF",
        "binary.txt": "binary",
        "latin1.txt": "UTF-8",
        "binary.html": "binary",
        "huge.txt": "too large",
        "leak.txt": "outside",
    }
    for name, word in expected.items():
        assert name in reasons, f"{name} not reported"
        assert word in reasons[name]
    assert not any("secret" in d.text.lower() for d in found)


@pytest.mark.parametrize("suffix", [".pdf", ".docx", ".html"])
def test_a_parser_crash_is_contained(tmp_path, monkeypatch, suffix):
    def boom(path):
        raise RuntimeError("parser bug")

    monkeypatch.setitem(LOADERS, suffix, boom)
    (tmp_path / f"x{suffix}").write_bytes(b"whatever")
    (tmp_path / "ok.txt").write_text("Fine text.", encoding="utf-8")
    found, skipped = scan(tmp_path)
    assert [d.source for d in found] == ["ok.txt"]
    assert "parser bug" in skipped[0].reason


def test_messages_name_every_format_of_the_registry(capsys, tmp_path):
    """The empty-documents note, `assistant index --help` and the eval's error ask the registry."""
    from assistant.errors import EvalError
    from assistant.eval.run import load_documents
    from assistant.serve import cli
    from assistant.serve.ui_render import documents_table

    with pytest.raises(SystemExit):
        cli.main(["index", "--help"])
    messages = [documents_table({}), " ".join(capsys.readouterr().out.split())]
    with pytest.raises(EvalError) as caught:
        load_documents(tmp_path, warn=lambda _: None)
    messages.append(str(caught.value))
    for message in messages:
        assert all(suffix in message for suffix in LOADERS), message
