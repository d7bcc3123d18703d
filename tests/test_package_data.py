"""Package data: the prompts stay in the repository's `prompts/` folder, load through
importlib.resources, and a wheel built from pyproject.toml carries them (and the reader's files)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

from assistant.answer.prompts import PACKAGE, load_prompt, prompt_names

from conftest import ROOT

PROMPTS = ROOT / "prompts"


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_pyproject_lists_every_package_of_the_tree():
    """The package list is explicit (the prompts folder is mapped in), so a new subpackage must be added to it."""
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "assistant").rglob("__init__.py")}
    config = _setuptools()
    assert set(config["packages"]) == tree | {PACKAGE}
    assert config["package-dir"] == {PACKAGE: "prompts"}


def test_every_prompt_file_loads_through_importlib_resources_from_the_prompts_folder():
    names = sorted(p.stem for p in PROMPTS.glob("*.txt"))
    assert names and prompt_names() == names
    for name in names:
        assert resources.files(PACKAGE).joinpath(f"{name}.txt").read_text(encoding="utf-8") == (PROMPTS / f"{name}.txt").read_text(encoding="utf-8")
    assert "Question: Q" in load_prompt("answer_user", passages="P", question="Q")


def test_a_wheel_built_from_pyproject_carries_the_prompts_and_the_reader(tmp_path):
    # No build isolation: the venv's setuptools builds it, so nothing is downloaded.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("assistant-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"assistant/prompt_files/{p.name}" for p in PROMPTS.glob("*.txt")} <= names
    assert {f"assistant/models/reader/{p.name}" for p in (ROOT / "assistant" / "models" / "reader").iterdir()} <= names
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "assistant").rglob("*.py")} <= names
    assert not any(Path(n).parts[0] == "prompts" for n in names)  # not a stray top-level package
