"""Staff accounts: password hashing, the users file (permissions, atomic writes), sign-in throttling."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat

import pytest

from assistant.errors import AssistantError, UsageError, UsersFileError
from assistant.serve.users import LoginThrottle, User, UserStore, hash_password, open_users, user_sessions_dir, verify_password

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path) -> UserStore:
    return UserStore(tmp_path / "private" / "users.json")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_hashes_are_salted_argon2id_and_verify():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second  # a new salt each time
    assert PASSWORD not in first
    assert verify_password(first, PASSWORD) and verify_password(second, PASSWORD)
    assert not verify_password(first, PASSWORD + "!") and not verify_password(first, "")
    assert not verify_password("not a hash", PASSWORD)  # an unreadable hash is a refusal, not a crash


def test_add_verify_list_remove(store):
    store.add("alice", PASSWORD, admin=True)
    store.add("bob", "bob's own password")
    assert store.users() == [User("alice", True), User("bob", False)]
    assert store.verify("alice", PASSWORD) == User("alice", True)
    assert store.verify("alice", "bob's own password") is None
    assert store.verify("carol", PASSWORD) is None  # unknown name: refused, same answer
    assert store.verify("Alice", PASSWORD) is None  # names are exact
    with pytest.raises(UsageError, match="already exists.*--replace"):
        store.add("alice", "another password")
    store.add("alice", "another password", replace=True)
    assert store.verify("alice", PASSWORD) is None and store.verify("alice", "another password") == User("alice", False)
    store.remove("bob")
    assert [u.name for u in store.users()] == ["alice"]
    with pytest.raises(UsageError, match="no user bob.*assistant users list"):
        store.remove("bob")


def test_the_file_holds_hashes_only_and_is_owner_only_even_with_an_open_umask(store):
    old = os.umask(0)
    try:
        store.add("alice", PASSWORD, admin=True)
        store.add("bob", "bob's own password")
    finally:
        os.umask(old)
    assert mode(store.path) == 0o600
    assert mode(store.path.parent / ".users.json.lock") == 0o600
    text = store.path.read_text(encoding="utf-8")
    assert PASSWORD not in text and "bob's own password" not in text
    data = json.loads(text)
    assert data["users"]["alice"]["hash"].startswith("$argon2id$") and data["users"]["alice"]["admin"] is True
    assert sorted(p.name for p in store.path.parent.iterdir()) == [".users.json.lock", "users.json"]  # no temp files left


def test_a_failed_write_leaves_the_old_file_whole(store, monkeypatch):
    store.add("alice", PASSWORD)
    before = store.path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.add("bob", "bob's own password")
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == [".users.json.lock", "users.json"]


def test_bad_names_and_passwords_say_what_to_do(store):
    for name in ["", "../etc", "a/b", ".hidden", "x" * 65, "with space"]:
        with pytest.raises(UsageError, match="invalid user name"):
            store.add(name, PASSWORD)
    with pytest.raises(UsageError, match="at least 8 characters"):
        store.add("alice", "short")
    assert not store.exists()
    with pytest.raises(UsageError):
        user_sessions_dir(store.path.parent, "..")


def test_an_unusable_users_file_is_one_clear_error(store, tmp_path):
    assert open_users(None) is None
    with pytest.raises(UsersFileError, match="no users file at .*assistant users add NAME --admin"):
        open_users(store.path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"version": 1, "users": {}}', encoding="utf-8")
    with pytest.raises(UsersFileError, match="no users in .*nobody could sign in"):
        open_users(store.path)
    store.path.write_text("not json", encoding="utf-8")
    with pytest.raises(UsersFileError, match="not one this assistant wrote") as caught:
        open_users(store.path)
    assert isinstance(caught.value, AssistantError)
    store.path.write_text("{}", encoding="utf-8")
    with pytest.raises(UsersFileError):  # a file it cannot read is never overwritten
        store.add("alice", PASSWORD)
    assert store.path.read_text(encoding="utf-8") == "{}"


def test_loose_permissions_are_noticed(store):
    store.add("alice", PASSWORD)
    assert not store.loose_permissions()
    store.path.chmod(0o644)
    assert store.loose_permissions()
    store.add("bob", "bob's own password")  # a rewrite makes it owner-only again
    assert mode(store.path) == 0o600


# Throttling ------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def attempt(throttle, name, address, ok):
    return asyncio.run(throttle.attempt(name, address, lambda: ok))


def test_repeated_failures_wait_longer_per_user_and_address(caplog):
    t = FakeTime()
    throttle = LoginThrottle(free=3, base=1.0, longest=8.0, clock=t.clock, sleep=t.sleep)
    with caplog.at_level(logging.WARNING, logger="assistant.serve.users"):
        for _ in range(3):
            assert attempt(throttle, "alice", "10.0.0.1", False) is False
    assert t.slept == []  # a few typos cost nothing
    for expected in [1.0, 2.0, 4.0, 8.0, 8.0]:
        attempt(throttle, "alice", "10.0.0.1", False)
        assert t.slept[-1] == expected
    # Another address, or another name from this address, is not slowed down.
    assert throttle.wait("alice", "10.0.0.2") == 0 and throttle.wait("bob", "10.0.0.1") == 0
    # Time spent waiting anyway counts: after the wait has passed, no further sleep.
    t.now += 60
    slept = len(t.slept)
    assert attempt(throttle, "alice", "10.0.0.1", True) is True and len(t.slept) == slept
    assert throttle.wait("alice", "10.0.0.1") == 0  # a success clears the count
    assert "sign-in failed for 'alice' from 10.0.0.1 (1 in a row)" in caplog.text


def test_the_count_is_forgotten_after_a_quiet_while():
    t = FakeTime()
    throttle = LoginThrottle(free=1, base=5.0, forget_after=100.0, clock=t.clock, sleep=t.sleep)
    attempt(throttle, "alice", "a", False)
    attempt(throttle, "alice", "a", False)
    assert throttle.wait("alice", "a") > 0
    t.now += 101
    assert throttle.wait("alice", "a") == 0


def test_attempts_sent_at_once_are_checked_one_after_another():
    t = FakeTime()
    throttle = LoginThrottle(free=1, base=1.0, longest=30.0, clock=t.clock, sleep=t.sleep)

    async def burst():
        return await asyncio.gather(*(throttle.attempt("alice", "a", lambda: False) for _ in range(5)))

    assert asyncio.run(burst()) == [False] * 5
    assert t.slept == [1.0, 2.0, 4.0, 8.0]  # each waited for the one before it: no way round the delay


def test_the_password_is_never_logged(store, caplog):
    from assistant.serve.ui_auth import SignIn

    store.add("alice", PASSWORD)
    signin = SignIn(store, LoginThrottle(free=0, base=0.0))
    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(signin.check("alice", "wrong " + PASSWORD)) is False
        assert asyncio.run(signin.check("alice", PASSWORD)) is True
    assert "sign-in failed for 'alice'" in caplog.text
    assert PASSWORD not in caplog.text and "$argon2" not in caplog.text


def test_an_unreadable_users_file_refuses_the_sign_in_without_crashing(store, caplog):
    from assistant.serve.ui_auth import SignIn

    store.add("alice", PASSWORD)
    store.path.write_text("garbled", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="assistant.serve.users"):
        assert asyncio.run(SignIn(store, LoginThrottle()).check("alice", PASSWORD)) is False
    assert "sign-in refused" in caplog.text and "not one this assistant wrote" in caplog.text and PASSWORD not in caplog.text
