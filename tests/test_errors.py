"""One error family: every error the package defines derives from AssistantError, and the command
line prints those as one line while a real bug keeps its traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import assistant
from assistant.errors import AssistantError
from assistant.serve import cli


def package_modules():
    for info in pkgutil.walk_packages(assistant.__path__, "assistant."):
        if info.name.endswith(("ui", "ui_render")) or ".models" in info.name:
            continue  # gradio's import is slow and defines no errors of ours
        yield importlib.import_module(info.name)


def test_every_error_class_of_the_package_is_in_the_family():
    defined = {
        obj for module in package_modules() for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__.startswith("assistant")
    }
    assert defined, "no error classes found"
    outside = {c.__name__ for c in defined if not issubclass(c, AssistantError)}
    assert not outside, outside


def test_the_cli_prints_the_family_in_one_line_and_lets_bugs_through(monkeypatch, capsys):
    def usage(args):
        raise cli.UsageError("pass a question")

    def bug(args):
        raise KeyError("a bug")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["ask"].set_defaults(func=usage)
    assert cli.main(["ask", "x"]) == 2
    assert capsys.readouterr().err == "assistant: pass a question\n"
    parser._subparsers._group_actions[0].choices["ask"].set_defaults(func=bug)
    with pytest.raises(KeyError):
        cli.main(["ask", "x"])


def test_a_quote_mismatch_is_an_error_of_the_family_not_an_assertion():
    """`python -O` strips assertions, and a bare AssertionError would read as a failed test, not a withheld answer."""
    from assistant.errors import QuoteMismatch

    assert issubclass(QuoteMismatch, AssistantError) and not issubclass(QuoteMismatch, AssertionError)
