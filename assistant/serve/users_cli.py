"""`assistant users add NAME [--admin] | remove NAME | list`: the staff accounts of the web chat."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..errors import UsageError
from .users import UserStore, check_name, check_password


def users_file(args: argparse.Namespace) -> Path:
    """`--users FILE`, else the `users_file` setting (ASSISTANT_USERS_FILE)."""
    if getattr(args, "users", None):
        return Path(args.users)
    from ..settings import Settings

    path = Settings().users_file
    if path is None:
        raise UsageError("no users file: pass --users FILE or set ASSISTANT_USERS_FILE (the same one `assistant serve` uses)")
    return path


def read_password(name: str, stdin=None) -> str:
    """The new password: asked twice without echo at a terminal, else the first line of stdin
    (for scripts: `printf '%s\\n' "$PASSWORD" | assistant users add NAME`)."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise UsageError("the two passwords differ; run the command again")
    else:
        line = stdin.readline()
        if not line:
            raise UsageError("no password on stdin: type it at a terminal, or pipe it in as one line")
        password = line.rstrip("\r\n")
    return check_password(password)


def cmd_users_add(args: argparse.Namespace) -> int:
    store = UserStore(users_file(args))
    check_name(args.name)  # before asking for a password
    store.add(args.name, read_password(args.name), admin=args.admin, replace=args.replace)
    role = "admin" if args.admin else "user"
    print(f"{'updated' if args.replace else 'added'} {role} {args.name} in {store.path}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    store = UserStore(users_file(args))
    store.remove(args.name)
    print(f"removed {args.name} from {store.path} (their saved conversations stay in the index folder)")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    store = UserStore(users_file(args))
    users = store.users()
    if not users:
        print(f"no users in {store.path}: add one with `assistant users add NAME --admin`", file=sys.stderr)
    for user in users:
        print(f"{user.name}\t{'admin' if user.admin else 'user'}")
    return 0


def add_users_parser(sub) -> None:
    p = sub.add_parser(
        "users", help="staff accounts of the web chat",
        description="Manage who may sign in to `assistant serve --users FILE`. Passwords are stored as salted argon2id hashes.",
    )
    commands = p.add_subparsers(dest="users_command", required=True)

    def users_option(q: argparse.ArgumentParser) -> None:
        q.add_argument("--users", metavar="FILE", help="the users file (default: ASSISTANT_USERS_FILE)")

    q = commands.add_parser("add", help="add a user (asks for the password, or reads one line from stdin)",
                            description="Add a user; the password is asked twice without echo, or read as one line from stdin.")
    q.add_argument("name")
    q.add_argument("--admin", action="store_true", help="may upload and remove documents")
    q.add_argument("--replace", action="store_true", help="set a new password (and admin flag) for an existing user")
    users_option(q)
    q.set_defaults(func=cmd_users_add)

    q = commands.add_parser("remove", help="remove a user", description="Remove a user; they can no longer sign in.")
    q.add_argument("name")
    users_option(q)
    q.set_defaults(func=cmd_users_remove)

    q = commands.add_parser("list", help="list the users", description="List the users, one per line: name and role.")
    users_option(q)
    q.set_defaults(func=cmd_users_list)
