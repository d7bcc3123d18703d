"""Staff accounts for the web chat: a users file of salted password hashes, sign-in throttling,
and conversations kept per user.

The users file is JSON, written whole (a temporary file renamed into place) with owner-only
permissions (0600); it holds each name, whether the user is an admin, and an argon2id hash of the
password (salted by argon2-cffi). Passwords and hashes are never logged or shown.

>>> users = UserStore(Path("users.json"))
>>> users.add("alice", "a long password", admin=True)
>>> users.verify("alice", "a long password")
User(name='alice', admin=True)
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..chat import ChatSession
from ..errors import UsageError, UsersFileError

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
FILE_MODE = 0o600
VERSION = 1


@dataclass(frozen=True)
class User:
    """A signed-in person: their name and whether they may change the documents."""

    name: str
    admin: bool = False


def check_name(name: str) -> str:
    """`name` if it is a valid user name (it names a folder of saved conversations), else UsageError."""
    if not USERNAME.match(name or ""):
        raise UsageError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"a password needs at least {MIN_PASSWORD} characters; choose a longer one")
    return password


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's recommended (RFC 9106) parameters


def hash_password(password: str) -> str:
    """A salted argon2id hash of `password` (a new random salt each time)."""
    return _hasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Does `password` match `stored_hash`? False for a wrong password or an unreadable hash."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_dummy_hash: str | None = None


def _spend_a_verify(password: str) -> None:
    """Check `password` against a throwaway hash, so an unknown name takes as long as a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password("not anybody's password")
    verify_password(_dummy_hash, password)


class UserStore:
    """The users file. Every call reads it afresh, so `assistant users add` while the server runs
    takes effect at the next sign-in; changes are written whole, one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"UserStore({str(self.path)!r})"

    # Reading -----------------------------------------------------------------------------------

    def _read(self) -> dict[str, dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UsersFileError(f"cannot read the users file {self.path}: {exc.strerror}; check its owner and permissions") from exc
        try:
            data = json.loads(text)
            users = data["users"]
            if not isinstance(users, dict) or not all(isinstance(v, dict) and isinstance(v.get("hash"), str) for v in users.values()):
                raise ValueError("bad users")
        except (ValueError, KeyError, TypeError) as exc:
            raise UsersFileError(
                f"the users file {self.path} is not one this assistant wrote; move it away and add the users again "
                "with `assistant users add NAME`"
            ) from exc
        return users

    def exists(self) -> bool:
        return self.path.is_file()

    def users(self) -> list[User]:
        """Every user, by name."""
        return [User(name, bool(entry.get("admin"))) for name, entry in sorted(self._read().items())]

    def get(self, name: str | None) -> User | None:
        entry = self._read().get(name or "")
        return User(name, bool(entry.get("admin"))) if entry is not None else None

    def verify(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None. Takes about as long for an unknown name."""
        entry = self._read().get(name)
        if entry is None:
            _spend_a_verify(password)
            return None
        return User(name, bool(entry.get("admin"))) if verify_password(entry["hash"], password) else None

    def loose_permissions(self) -> bool:
        """Can anyone but the owner read or write the file?"""
        return self.exists() and bool(self.path.stat().st_mode & 0o077)

    # Changing ----------------------------------------------------------------------------------

    def add(self, name: str, password: str, admin: bool = False, replace: bool = False) -> None:
        """Add a user (or, with `replace`, set an existing user's password and admin flag)."""
        check_name(name)
        check_password(password)
        stored = hash_password(password)
        with self._locked():
            users = self._read()
            if name in users and not replace:
                raise UsageError(
                    f"user {name} already exists in {self.path}; `assistant users add {name} --replace` sets a new password"
                )
            users[name] = {"hash": stored, "admin": bool(admin), "changed": datetime.now(UTC).isoformat(timespec="seconds")}
            self._write(users)

    def remove(self, name: str) -> None:
        with self._locked():
            users = self._read()
            if name not in users:
                raise UsageError(f"no user {name} in {self.path}; `assistant users list` shows who is there")
            del users[name]
            self._write(users)

    @contextmanager
    def _locked(self):
        """One writer at a time: two `assistant users add` at once both land."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.parent / f".{self.path.name}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, users: dict[str, dict]) -> None:
        """Replace the file whole: written beside it with mode 0600, synced, renamed into place."""
        data = json.dumps({"version": VERSION, "users": dict(sorted(users.items()))}, indent=1).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def open_users(path: Path | None) -> UserStore | None:
    """The users file `serve` signs people in with, checked: None when none is configured."""
    if path is None:
        return None
    store = UserStore(path)
    if not store.exists():
        raise UsersFileError(f"no users file at {path}: create it with `assistant users add NAME --admin --users {path}`")
    if not store.users():
        raise UsersFileError(f"no users in {path}, so nobody could sign in: add one with `assistant users add NAME --users {path}`")
    return store


# Throttling ------------------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Slows down repeated wrong passwords for one user from one address.

    The first `free` failures in a row cost nothing extra; after that each attempt waits until
    `base * 2**(failures - free)` seconds (at most `longest`) have passed since the last failure.
    Attempts for one user and address are checked one at a time, so sending many at once does not
    get around the wait. A success, or `forget_after` seconds without a failure, clears the count.
    """

    def __init__(self, free: int = 3, base: float = 1.0, longest: float = 30.0, forget_after: float = 900.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable] = asyncio.sleep) -> None:
        self.free, self.base, self.longest, self.forget_after = free, base, longest, forget_after
        self.clock, self.sleep = clock, sleep
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def wait(self, name: str, address: str) -> float:
        """Seconds the next attempt for `name` from `address` waits before its password is checked."""
        failed = self._failures.get((name, address))
        if failed is None or failed.count < self.free:
            return 0.0
        now = self.clock()
        if now - failed.last > self.forget_after:
            return 0.0
        delay = min(self.longest, self.base * 2 ** (failed.count - self.free))
        return max(0.0, failed.last + delay - now)

    async def attempt(self, name: str, address: str, check: Callable[[], bool]) -> bool:
        """Run `check` (the password check, in a worker thread) after any wait; record the outcome."""
        key = (name, address)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            delay = self.wait(name, address)
            if delay > 0:
                await self.sleep(delay)
            ok = await asyncio.to_thread(check)
            self._record(key, ok)
        if not lock.locked() and key not in self._failures:
            self._locks.pop(key, None)
        return ok

    def _record(self, key: tuple[str, str], ok: bool) -> None:
        now = self.clock()
        if ok:
            self._failures.pop(key, None)
            return
        failed = self._failures.get(key)
        if failed is None or now - failed.last > self.forget_after:
            failed = self._failures[key] = _Failures(0, now)
        failed.count += 1
        failed.last = now
        if len(self._failures) > 10_000:  # forget the stale ones, so random names cannot fill memory
            for stale in [k for k, f in self._failures.items() if now - f.last > self.forget_after]:
                del self._failures[stale]
                if stale in self._locks and not self._locks[stale].locked():
                    del self._locks[stale]
        # The name as typed, escaped; never the password.
        log.warning("sign-in failed for %r from %s (%d in a row)", key[0][:64], key[1], failed.count)


# Conversations ---------------------------------------------------------------------------------


def user_sessions_dir(index_dir: Path, user: str) -> Path:
    """Where `user`'s conversations are saved: `<index_dir>/sessions/users/<user>/`."""
    return Path(index_dir) / "sessions" / "users" / check_name(user)


@dataclass
class UserChatSession(ChatSession):
    """A conversation saved under its owner: another user asking for the same id gets their own
    (empty) session, never this one."""

    owner: str = ""

    @property
    def path(self) -> Path:
        return user_sessions_dir(self.assistant.settings.index_dir, self.owner) / f"{self.session_id}.json"
