import pytest

from assistant.ingest.scan import IngestError, scan


def test_reads_txt_and_md_recursively_with_relative_names(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Alpha text.", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Beta\nBeta text.", encoding="utf-8")
    (tmp_path / "c.csv").write_text("x,y", encoding="utf-8")
    docs, skipped = scan(tmp_path)
    assert [d.source for d in docs] == ["a.txt", "sub/b.md"]
    assert skipped == []


def test_bad_files_are_reported_and_skipped(tmp_path):
    (tmp_path / "good.txt").write_text("A good document.", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    docs, skipped = scan(tmp_path)
    assert [d.source for d in docs] == ["good.txt"]
    reasons = {s.path: s.reason for s in skipped}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]


def test_links_out_of_the_folder_and_loops_are_not_followed(tmp_path):
    docs_dir, outside = tmp_path / "docs", tmp_path / "outside"
    docs_dir.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("Secret.", encoding="utf-8")
    (docs_dir / "ok.txt").write_text("Fine.", encoding="utf-8")
    (docs_dir / "leak.txt").symlink_to(outside / "secret.txt")
    (docs_dir / "out").symlink_to(outside)
    (docs_dir / "loop").symlink_to(docs_dir)
    docs, skipped = scan(docs_dir)
    assert [d.source for d in docs] == ["ok.txt"]
    assert any(s.path == "leak.txt" and "outside" in s.reason for s in skipped)
    assert any(s.path == "out/" and "outside" in s.reason for s in skipped)
    assert any(s.path == "loop/" and "loop" in s.reason for s in skipped)


def test_file_link_loops_are_skipped_with_a_reason_and_the_rest_is_read(tmp_path):
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    (tmp_path / "self.txt").symlink_to(tmp_path / "self.txt")
    (tmp_path / "good.txt").write_text("Fine.", encoding="utf-8")
    (tmp_path / "odd\nname.txt").write_text("Odd but fine.", encoding="utf-8")
    docs, skipped = scan(tmp_path)
    assert [d.source for d in docs] == ["good.txt", "odd\nname.txt"]
    assert {s.path: s.reason for s in skipped} == {p: "a broken link or link loop" for p in ("a.txt", "b.txt", "self.txt")}


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        scan(tmp_path / "nope")


def test_windows_line_ends_are_normalised(tmp_path):
    (tmp_path / "w.txt").write_bytes(b"One.\r\nTwo.")
    docs, _ = scan(tmp_path)
    assert docs[0].text == "One.\nTwo."
