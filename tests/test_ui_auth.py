"""The page's handlers with sign-in: private conversations, document changes for admins only."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from assistant import Assistant, Settings
from assistant.serve.ui import ChatHandlers
from assistant.serve.users import UserStore

from conftest import SEEDS


def as_user(name):
    return SimpleNamespace(username=name)  # what Gradio hands a handler: a request with the signed-in name


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    docs = tmp_path_factory.mktemp("auth-docs")
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, docs)
    return Assistant(Settings(docs_dir=docs, index_dir=tmp_path_factory.mktemp("auth-index")))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = UserStore(tmp_path_factory.mktemp("auth-users") / "users.json")
    store.add("alice", "alice's password", admin=True)
    store.add("bob", "bob's password")
    return store


@pytest.fixture
def page(bot, store):
    from assistant.serve.ui_auth import PageHandlers

    return PageHandlers(ChatHandlers(bot), store, admin_only=True)


def ask(page, question, session_id=None, user="alice"):
    *_, (messages, panel, session_id, _) = page.respond(question, [], session_id, 5, None, as_user(user))
    return messages, panel, session_id


def test_each_user_resumes_only_their_own_conversation(page, bot):
    messages, _, alice_id = ask(page, "How many soldiers deserted?")
    assert "18" in messages[-1]["content"]
    saved = bot.settings.index_dir / "sessions" / "users" / "alice" / f"{alice_id}.json"
    assert saved.is_file() and not (bot.settings.index_dir / "sessions" / f"{alice_id}.json").exists()
    # Alice gets her conversation back by its id ...
    messages, panel, resumed, status = page.resume(alice_id, as_user("alice"))
    assert resumed == alice_id and "1 turns" in status and "Some 18 North Korean soldiers" in panel
    # ... Bob asking for the same id gets an empty session of his own, and learns nothing of hers.
    messages, panel, resumed, status = page.resume(alice_id, as_user("bob"))
    assert messages == [] and "No saved session" in status and "soldiers" not in panel
    # A question Bob asks in "that" session is saved as his, beside hers, never into hers.
    ask(page, "Who reported it?", alice_id, user="bob")
    assert len(page.h.session(alice_id, user="alice").history) == 1
    assert len(page.h.session(alice_id, user="bob").history) == 1


def test_a_request_without_a_current_user_is_refused(page, store, tmp_path):
    import gradio as gr

    for request in (None, as_user(None), as_user("mallory")):
        with pytest.raises(gr.Error, match="sign in again"):
            list(page.respond("How many soldiers deserted?", [], None, 5, None, request))
        with pytest.raises(gr.Error):
            page.resume("abc", request)


def test_only_admins_change_the_documents(page, bot, tmp_path):
    upload = tmp_path / "quince.txt"
    upload.write_text("The Brindlemoor orchard grows 73 varieties of quince.", encoding="utf-8")
    status, _, _, _ = page.upload([str(upload)], as_user("bob"))
    assert "Only admins" in status and "uploads/quince.txt" not in bot.documents()
    status, _, _ = page.remove(next(iter(bot.documents())), as_user("bob"))
    assert "Only admins" in status
    # The page hides the controls from Bob, and shows them to Alice.
    _, pick, upload_box, remove, who, note = page.load(as_user("bob"))
    assert pick["visible"] is False and upload_box["visible"] is False and remove["visible"] is False and "Only admins" in note
    assert "bob" in who["value"] and "admin" not in who["value"]
    _, pick, upload_box, remove, who, note = page.load(as_user("alice"))
    assert upload_box["visible"] is True and "(admin)" in who["value"] and note == ""
    status, _, _, _ = page.upload([str(upload)], as_user("alice"))
    assert "quince.txt: indexed" in status.replace("\\", "") and "uploads/quince.txt" in bot.documents()
    status, _, _ = page.remove("uploads/quince.txt", as_user("alice"))
    assert "Removed" in status and "uploads/quince.txt" not in bot.documents()


def test_the_admin_rule_can_be_turned_off(bot, store):
    from assistant.serve.ui_auth import PageHandlers

    page = PageHandlers(ChatHandlers(bot), store, admin_only=False)
    assert page.may_manage(store.get("bob"))
    assert page.load(as_user("bob"))[2]["visible"] is True


def test_without_sign_in_nothing_changes(bot):
    from assistant.serve.ui_auth import PageHandlers

    page = PageHandlers(ChatHandlers(bot), None)
    *_, (_, _, session_id, _) = page.respond("How many soldiers deserted?", [], None, 5, None, as_user(None))
    assert (bot.settings.index_dir / "sessions" / f"{session_id}.json").is_file()
    assert page.load(None)[2]["visible"] is True and page.load(None)[4]["visible"] is False
