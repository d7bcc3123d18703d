"""Sign-in for the web chat, and the page's handlers told who is asking.

With a users file, `assistant serve` uses Gradio's own login: a form at `/`, a session cookie
(HTTP-only) once the password is right, and `/logout`; the page, `/config` and every
`/gradio_api/...` endpoint answer 401 without that cookie. The password check runs against the
users file (`users.UserStore`), slowed down per user and client address after repeated failures
(`users.LoginThrottle`). Each handler learns the signed-in user from its `gr.Request`, saves and
resumes conversations under that user, and refuses document changes to non-admins when
`documents_admin_only` is on.

This module does not use `from __future__ import annotations`: Gradio recognises the
`request: gr.Request` parameter by its evaluated annotation.
"""

import contextvars
import ipaddress
import sys

import gradio as gr

from ..errors import AssistantError
from .ui_render import escape
from .users import LoginThrottle, User, UserStore, log

CLIENT_ADDRESS = contextvars.ContextVar("client_address", default="unknown")

SIGN_IN_MESSAGE = (
    "Sign in with the name and password your administrator set up. "
    "After a few wrong passwords, each further try waits longer (up to 30 seconds). "
    "Forgotten your password? An admin can set a new one with <code>assistant users add NAME --replace</code>."
)
NOT_SIGNED_IN = "You are not signed in, or your account was removed: reload the page and sign in again."
ADMINS_ONLY = "Only admins can add or remove documents; ask an admin (`assistant users add NAME --admin` makes one)."


class ClientAddress:
    """ASGI middleware that makes the client's address known to the password check (Gradio calls
    the check with the name and password only)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = CLIENT_ADDRESS.set(client[0] if client else "unknown")
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)


class SignIn:
    """The password check Gradio's login calls."""

    def __init__(self, users: UserStore, throttle: LoginThrottle | None = None) -> None:
        self.users = users
        self.throttle = throttle or LoginThrottle()

    async def check(self, username: str, password: str) -> bool:
        # An `async def` on purpose: Gradio awaits the check only when it is a coroutine function,
        # and runs a plain one on its event loop, where the slow hash would stall every page.
        address = CLIENT_ADDRESS.get()
        return await self.throttle.attempt(username, address, lambda: self._verify(username, password))

    def _verify(self, username: str, password: str) -> bool:
        try:
            return self.users.verify(username, password) is not None
        except AssistantError as exc:  # e.g. the users file became unreadable: refuse, do not crash the login
            log.error("sign-in refused: %s", exc)
            return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def launch_options(users: UserStore | None, host: str) -> dict:
    """Keyword arguments for `Blocks.launch`: Gradio's login over `users`, or none (with a warning
    when the page is reachable from other machines)."""
    if users is None:
        if not is_loopback(host):
            print(
                f"assistant: warning: serving on {host} without sign-in: anyone who can reach it can read the conversations "
                "and change the documents; add users (`assistant users add NAME --admin --users FILE`) and serve with --users FILE",
                file=sys.stderr,
            )
        return {}
    if users.loose_permissions():
        print(f"assistant: warning: {users.path} can be read by other users: `chmod 600 {users.path}`", file=sys.stderr)
    from starlette.middleware import Middleware

    return {
        "auth": SignIn(users).check,
        "auth_message": SIGN_IN_MESSAGE,
        "app_kwargs": {"middleware": [Middleware(ClientAddress)]},
        "run_history": False,  # no record of anyone's questions left in the browser
    }


class PageHandlers:
    """The page's event handlers: `ui.ChatHandlers` with the signed-in user of each request."""

    def __init__(self, handlers, users: UserStore | None, admin_only: bool = True) -> None:
        self.h = handlers
        self.users = users
        self.admin_only = admin_only

    def user(self, request: gr.Request | None) -> User | None:
        """Who is asking: None without sign-in; with it, a user still in the users file, or an error."""
        if self.users is None:
            return None
        name = getattr(request, "username", None)
        user = self.users.get(name) if name else None
        if user is None:
            raise gr.Error(NOT_SIGNED_IN)
        return user

    def may_manage(self, user: User | None) -> bool:
        return user is None or user.admin or not self.admin_only

    @staticmethod
    def _name(user: User | None) -> str | None:
        return user.name if user else None

    def respond(self, message, messages, session_id, k, answerer, request: gr.Request):
        user = self.user(request)
        yield from self.h.respond(message, messages, session_id, k, answerer, user=self._name(user))

    def resume(self, session_id, request: gr.Request):
        return self.h.resume(session_id, user=self._name(self.user(request)))

    def new_chat(self, request: gr.Request):
        return self.h.new_chat(user=self._name(self.user(request)))

    def upload(self, files, request: gr.Request, progress=gr.Progress()):  # how Gradio asks for a progress bar
        if not self.may_manage(self.user(request)):
            return ADMINS_ONLY, self.h.documents(), gr.update(choices=self.h.document_names()), None
        status, docs, names = self.h.upload(files, progress)
        return status, docs, gr.update(choices=names), None

    def remove(self, source, request: gr.Request):
        if not self.may_manage(self.user(request)):
            return ADMINS_ONLY, self.h.documents(), gr.update(choices=self.h.document_names(), value=None)
        status, docs, names = self.h.remove(source)
        return status, docs, gr.update(choices=names, value=None)

    def load(self, request: gr.Request):
        """A tab opens: the current document list, the document controls for those who may use
        them, and who is signed in."""
        user = self.user(request)
        manage = self.may_manage(user)
        who = f"Signed in as **{escape(user.name)}**{' (admin)' if user.admin else ''}." if user else ""
        return (
            self.h.documents(),
            gr.update(choices=self.h.document_names(), visible=manage),
            gr.update(visible=manage),
            gr.update(visible=manage),
            gr.update(value=who, visible=bool(user)),
            "" if manage else ADMINS_ONLY,
        )
