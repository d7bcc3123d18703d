"""Prompts: the text files of the repository's `prompts/` folder, filled in with a check.

`pyproject.toml` maps that folder to the package `assistant.prompt_files`, so the files load through
`importlib.resources` from an editable install and from a wheel alike.

>>> load_prompt("answer_user", passages="<passage 1>…</passage 1>", question="How many soldiers deserted?")
"""

from __future__ import annotations

import string
from importlib import resources
from importlib.resources.abc import Traversable

from ..errors import PromptError

PACKAGE = "assistant.prompt_files"


def _folder() -> Traversable:
    try:
        return resources.files(PACKAGE)
    except ModuleNotFoundError as exc:
        raise PromptError(
            f"the prompt files (package {PACKAGE}, the repository's prompts/ folder) are not installed: "
            "reinstall with `pip install -e .`"
        ) from exc


def prompt_names() -> list[str]:
    """The prompts shipped: `['answer_system', 'answer_user', ...]`."""
    return sorted(f.name.removesuffix(".txt") for f in _folder().iterdir() if f.name.endswith(".txt"))


def load_prompt(name: str, **variables: str) -> str:
    """`prompts/<name>.txt` with `{variables}` filled in; every variable used must be given, and only those."""
    path = _folder() / f"{name}.txt"
    if not path.is_file():
        raise PromptError(f"prompt file prompts/{name}.txt is missing: restore it from the repository and reinstall")
    template = path.read_text(encoding="utf-8")
    used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if used != set(variables):
        raise PromptError(
            f"prompt {name}.txt uses {sorted(used)} but was given {sorted(variables)}: make the file and the code agree"
        )
    return template.format(**variables)
