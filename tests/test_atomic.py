"""Whole-or-nothing writes: a file or folder is either the old one or the whole new one, and no
temporary is left behind."""

from __future__ import annotations

import os

import pytest

from assistant import atomic


def test_write_file_replaces_whole_and_leaves_nothing_else(tmp_path, monkeypatch):
    target = tmp_path / "sessions" / "abc.json"
    atomic.write_file(target, "first")
    atomic.write_file(target, b"second")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["abc.json"]

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_file(target, "third")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["abc.json"]


def test_new_folder_appears_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "cache" / "export"
    with pytest.raises(RuntimeError):
        with atomic.new_folder(folder) as work:
            (work / "part").write_text("half")
            raise RuntimeError("killed")
    assert not folder.exists() and os.listdir(folder.parent) == []

    with atomic.new_folder(folder) as work:
        (work / "model").write_text("mine")
    assert (folder / "model").read_text() == "mine"

    with atomic.new_folder(folder) as work:  # as if a second process wrote it too: the first one stays
        (work / "model").write_text("second")
    assert (folder / "model").read_text() == "mine" and os.listdir(folder.parent) == ["export"]
