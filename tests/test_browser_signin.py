"""Sign-in in a real browser: Debian's chromium driven by Playwright against `assistant serve --users FILE`."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from assistant_server import serving
from test_browser import ARGS, CHROMIUM, ask, shot

from assistant.serve.users import UserStore

from conftest import SEEDS

pytestmark = [pytest.mark.browser, pytest.mark.server]

PORTS = range(7920, 7940)
PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose users file holds alice (admin) and bob; yields (url, index folder)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    docs = tmp_path_factory.mktemp("signin-docs")
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, docs)
    users = UserStore(tmp_path_factory.mktemp("signin-users") / "users.json")
    users.add("alice", PASSWORDS["alice"], admin=True)
    users.add("bob", PASSWORDS["bob"])
    index = tmp_path_factory.mktemp("signin-index")
    with serving(docs, index, tmp_path_factory.mktemp("signin-log"), PORTS, args=("--users", str(users.path))) as url:
        yield url, index


@contextmanager
def browser(url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        try:
            yield page
        finally:
            chromium.close()


def sign_in(page, name: str, password: str) -> None:
    page.wait_for_selector("input[type=password]", timeout=60_000)
    page.locator("input[data-testid=textbox]").first.fill(name)
    page.fill("input[type=password]", password)
    page.get_by_role("button", name="Login").click()


def sign_out(page) -> None:
    page.click("#sign-out")
    page.wait_for_selector("input[type=password]", timeout=60_000)
    assert page.locator("#question").count() == 0


def status_of(url: str, method: str = "GET", cookie: str | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                     headers={"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_nothing_is_served_without_signing_in(server):
    url, _ = server
    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode("utf-8")
    assert '"auth_required":true' in page and "How many soldiers" not in page  # the login form, not the chat
    for path in ["config", "gradio_api/info", "gradio_api/openapi.json", "gradio_api/queue/data?session_hash=x",
                 "gradio_api/file=" + str(SEEDS / "000_aa3b016887bfe7d3.txt"), "gradio_api/upload_progress?upload_id=x"]:
        assert status_of(url + path) == 401, path
    for path in ["gradio_api/queue/join", "gradio_api/call/respond", "gradio_api/run/respond", "gradio_api/upload"]:
        assert status_of(url + path, "POST") == 401, path
    assert status_of(url + "config", cookie="access-token-unsecure-x=guessed; access-token-x=guessed") == 401


def test_a_wrong_password_is_refused(server):
    url, _ = server
    with browser(url) as page:
        sign_in(page, "bob", "not bob's password")
        page.wait_for_selector("text=Incorrect Credentials", timeout=30_000)
        assert page.locator("#question").count() == 0
        shot(page, "signin-refused.png")


def test_each_user_sees_and_resumes_only_their_own_conversation(server):
    url, index = server
    with browser(url) as page:
        sign_in(page, "alice", PASSWORDS["alice"])
        page.wait_for_selector("#question textarea", timeout=60_000)
        assert "Signed in as alice (admin)" in page.locator("#who").inner_text()
        answer = ask(page, "How many soldiers deserted?", 1)
        assert "18" in answer
        saved = list((index / "sessions" / "users" / "alice").glob("*.json"))
        assert len(saved) == 1 and json.loads(saved[0].read_text(encoding="utf-8"))["turns"][0]["question"] == "How many soldiers deserted?"
        alice_id = saved[0].stem
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
        assert status_of(url + "config", cookie=cookies) == 200
        shot(page, "signin-alice.png")
        sign_out(page)
        assert status_of(url + "config", cookie=cookies) == 401  # signing out ends the session on the server too

        sign_in(page, "bob", PASSWORDS["bob"])
        page.wait_for_selector("#question textarea", timeout=60_000)
        assert "Signed in as bob" in page.locator("#who").inner_text()
        assert "soldiers" not in page.locator("#chat").inner_text() and page.locator("#sources mark").count() == 0
        page.click("#manage button, #manage .label-wrap")
        page.wait_for_selector("#session-id textarea, #session-id input", timeout=10_000)
        page.wait_for_function("() => document.querySelector('#who')?.innerText.includes('bob')", timeout=30_000)  # loaded
        assert not page.locator("#upload").is_visible() and not page.locator("#remove").is_visible()  # not an admin
        assert "Only admins can add or remove documents" in page.locator("#upload-status").inner_text()
        page.locator("#session-id textarea, #session-id input").first.fill(alice_id)
        page.get_by_role("button", name="Resume").click()
        page.wait_for_function("() => document.querySelector('#session-status')?.innerText.includes('No saved session')", timeout=30_000)
        assert "soldiers" not in page.locator("#chat").inner_text() and "North Korean" not in page.locator("#sources").inner_text()
        shot(page, "signin-bob.png")
        sign_out(page)

        # Alice, signed in again, gets her conversation back by the same id.
        sign_in(page, "alice", PASSWORDS["alice"])
        page.wait_for_selector("#question textarea", timeout=60_000)
        page.click("#manage button, #manage .label-wrap")
        page.wait_for_selector("#upload", state="visible", timeout=30_000)  # an admin
        page.locator("#session-id textarea, #session-id input").first.fill(alice_id)
        page.get_by_role("button", name="Resume").click()
        page.wait_for_function("() => document.querySelector('#session-status')?.innerText.includes('Resumed session')", timeout=30_000)
        assert "Some 18 North Korean soldiers" in page.locator("#sources #cite-1-1 mark").inner_text()
