"""`assistant users add/remove/list`, and `assistant serve` with a users file."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import pytest

from assistant.serve.cli import main
from assistant.serve.users import User, UserStore

from conftest import ROOT

PASSWORD = "correct horse battery"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def users(argv, stdin="", monkeypatch=None, capsys=None):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin)
    code = main(["users", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_remove_with_the_password_on_stdin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    run = lambda *argv, stdin="": users([*argv, "--users", str(path)], stdin, monkeypatch, capsys)  # noqa: E731
    assert run("add", "alice", "--admin", stdin=PASSWORD + "\n")[:2] == (0, f"added admin alice in {path}\n")
    assert run("add", "bob", stdin="bob's own password\r\n")[0] == 0  # one line; its line ending is not part of it
    assert run("list") == (0, "alice\tadmin\nbob\tuser\n", "")
    store = UserStore(path)
    assert store.verify("alice", PASSWORD) == User("alice", True) and store.verify("bob", "bob's own password") == User("bob")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PASSWORD not in path.read_text(encoding="utf-8")

    code, _, err = run("add", "alice", stdin="another password\n")
    assert code == 2 and err == f"assistant: user alice already exists in {path}; `assistant users add alice --replace` sets a new password\n"
    assert run("add", "alice", "--replace", stdin="another password\n")[0] == 0
    assert store.verify("alice", "another password") == User("alice", False)

    assert run("remove", "bob")[0] == 0 and run("list")[1] == "alice\tuser\n"
    code, _, err = run("remove", "bob")
    assert code == 2 and "no user bob" in err and "assistant users list" in err


def test_refusals_are_one_line_saying_what_to_do(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    run = lambda *argv, stdin="": users([*argv, "--users", str(path)], stdin, monkeypatch, capsys)  # noqa: E731
    code, _, err = run("add", "alice", stdin="")
    assert code == 2 and err == "assistant: no password on stdin: type it at a terminal, or pipe it in as one line\n"
    code, _, err = run("add", "alice", stdin="short\n")
    assert code == 2 and "at least 8 characters" in err
    code, _, err = run("add", "../root", stdin=PASSWORD + "\n")
    assert code == 2 and "invalid user name" in err
    assert not path.exists()
    monkeypatch.delenv("ASSISTANT_USERS_FILE", raising=False)
    code, _, err = users(["list"], "", monkeypatch, capsys)
    assert code == 2 and "pass --users FILE or set ASSISTANT_USERS_FILE" in err


def test_the_setting_names_the_file_and_a_terminal_is_asked_twice_without_echo(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setenv("ASSISTANT_USERS_FILE", str(path))
    asked = []
    answers = iter([PASSWORD, PASSWORD, PASSWORD, "something else"])

    def getpass(prompt):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    assert users(["add", "alice"], Terminal(), monkeypatch, capsys)[0] == 0
    assert asked == ["Password for alice: ", "Repeat it: "]
    assert UserStore(path).verify("alice", PASSWORD) == User("alice")
    code, _, err = users(["add", "bob"], Terminal(), monkeypatch, capsys)
    assert code == 2 and "the two passwords differ" in err


def test_a_script_pipes_the_password_to_the_command(tmp_path):
    path = tmp_path / "users.json"
    out = subprocess.run([sys.executable, "-m", "assistant.serve.cli", "users", "add", "alice", "--admin", "--users", str(path)],
                         input=PASSWORD + "\n", capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert PASSWORD not in out.stdout + out.stderr
    assert UserStore(path).verify("alice", PASSWORD) == User("alice", True)


def test_serve_stops_at_once_on_a_missing_or_empty_users_file(tmp_path, monkeypatch, capsys):
    for setup in ("missing", "empty"):
        path = tmp_path / f"{setup}.json"
        if setup == "empty":
            path.write_text('{"version": 1, "users": {}}', encoding="utf-8")
        code = main(["serve", "--users", str(path), "--index", str(tmp_path / "never-built")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "assistant users add NAME" in err
        assert not (tmp_path / "never-built").exists()  # refused before indexing anything


def test_without_a_users_file_serving_beyond_this_machine_warns_once(capsys):
    from assistant.serve.ui_auth import launch_options

    assert launch_options(None, "127.0.0.1") == {} and launch_options(None, "localhost") == {}
    assert capsys.readouterr().err == ""
    assert launch_options(None, "0.0.0.0") == {}
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "without sign-in" in err and "--users FILE" in err


def test_with_a_users_file_gradio_gets_an_awaited_password_check(tmp_path):
    import inspect

    from assistant.serve.ui_auth import launch_options

    store = UserStore(tmp_path / "users.json")
    store.add("alice", PASSWORD)
    options = launch_options(store, "0.0.0.0")
    # Gradio awaits the check only when it is a coroutine function; a plain callable returning a
    # coroutine would be truthy, letting any password in.
    assert inspect.iscoroutinefunction(options["auth"])
    assert options["run_history"] is False and options["auth_message"]


@pytest.mark.parametrize("command", ["add", "remove", "list"])
def test_help_on_each_users_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main(["users", command, "--help"])
    assert done.value.code == 0 and f"usage: assistant users {command}" in capsys.readouterr().out
