"""The web chat in a real browser: Debian's chromium driven by Playwright against `assistant serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from assistant_server import serving

from conftest import ROOT, SEEDS

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
PORTS = range(7900, 7920)
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = (
    "The lighthouse keeper of Port Vellan logged <script>alert('pwned')</script> exactly 412 storms.\n"
    "Her report carried a picture link ![x](http://evil.invalid/x.png) that must stay text.\n"
)


@contextmanager
def browser_page(url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    docs = tmp_path_factory.mktemp("browser-docs")
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, docs)
    (docs / "lighthouse.txt").write_text(HOSTILE, encoding="utf-8")
    with serving(docs, tmp_path_factory.mktemp("browser-index"), tmp_path_factory.mktemp("browser-log"), PORTS) as url:
        yield url


@pytest.fixture
def page(server):
    with browser_page(server) as page:
        yield page


def ask(page, question: str, turn: int) -> str:
    page.fill("#question textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#sources #cite-{turn}-1 mark", timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#chat')?.innerText.includes('Searching the documents')", timeout=60_000)
    settle(page)
    return page.locator("#chat .message-row.bot-row, #chat .bot").last.inner_text()


def settle(page, quiet_ms: int = 1000) -> None:
    """Wait until the chat and the source panel have not changed for `quiet_ms`: on a loaded machine
    Gradio can still be drawing an answer's last update after its quote is there, and that redraw
    drops a highlight clicked before it (a fresh-clone run under load lost one)."""
    page.evaluate("() => { window.__settle = null; }")
    page.wait_for_function(
        """(quiet) => {
          const now = ['#chat', '#sources'].map((s) => document.querySelector(s)?.innerHTML || '').join('\u0000');
          const seen = window.__settle;
          if (!seen || seen.html !== now) { window.__settle = {html: now, since: Date.now()}; return false; }
          return Date.now() - seen.since >= quiet;
        }""",
        arg=quiet_ms, polling=100, timeout=60_000,
    )


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_three_turn_conversation_with_highlighted_quotes(page):
    ask(page, "How many soldiers deserted?", 1)
    assert "Some 18 North Korean soldiers" in page.locator("#sources #cite-1-1 mark").inner_text()
    ask(page, "Where were they deployed?", 2)
    assert page.locator("#sources #cite-2-1 mark").inner_text().startswith("The troops were deployed in Russia’s Kursk and Bryansk")
    answer = ask(page, "Who reported it?", 3)
    assert "Suspilne" in answer and "Suspilne" in page.locator("#sources #cite-3-1 mark").inner_text()
    # Clicking the first turn's marker brings its passage into view in the source panel.
    page.locator("#chat a.cite-marker[href='#cite-1-1']").first.click()
    page.wait_for_selector("#cite-1-1.active", timeout=5_000)
    box = page.locator("#cite-1-1").bounding_box()
    assert box is not None and 0 <= box["y"] < 900
    shot(page, "conversation.png")


def test_uploaded_file_is_citable_at_once(page, tmp_path):
    upload = tmp_path / "orchards.md"
    upload.write_text("# Orchards\n\nThe Brindlemoor orchard grows 73 varieties of quince on its terraces.\n", encoding="utf-8")
    page.click("#manage button, #manage .label-wrap")
    page.set_input_files("#upload input[type=file]", str(upload))
    # While the file is indexed, Gradio's progress overlay ("Indexing orchards.md") covers both the
    # status and the table, so the file's name alone is there before it is searchable.
    page.wait_for_function("() => document.querySelector('#upload-status')?.innerText.includes('orchards.md: indexed')", timeout=120_000)
    page.wait_for_function("() => document.querySelector('#documents')?.innerText.includes('uploads/orchards.md')", timeout=10_000)
    answer = ask(page, "How many varieties of quince does the Brindlemoor orchard grow?", 1)
    assert "73" in answer and "orchards.md" in page.locator("#sources #cite-1-1").inner_text()
    shot(page, "upload.png")


def test_a_script_tag_in_a_document_shows_as_text(page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ask(page, "How many storms did the lighthouse keeper of Port Vellan log?", 1)
    panel = page.locator("#sources").inner_text()
    assert "<script>alert('pwned')</script>" in panel
    assert "<script>alert('pwned')</script>" in page.locator("#chat").inner_text()
    ask(page, "What picture link did her report carry?", 2)
    assert "![x](http://evil.invalid/x.png)" in page.locator("#sources").inner_text()
    assert page.locator("#sources script, #chat script, img[src*='evil']").count() == 0
    assert dialogs == []
    shot(page, "escaped.png")


def test_an_upload_survives_an_index_run_and_a_restart_and_removal_deletes_it(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    docs, index = tmp_path / "docs", tmp_path / "index"
    shutil.copytree(SEEDS, docs)
    upload = tmp_path / "orchards.md"
    upload.write_text("# Orchards\n\nThe Brindlemoor orchard grows 73 varieties of quince on its terraces.\n", encoding="utf-8")
    with serving(docs, index, tmp_path, PORTS) as url, browser_page(url) as page:
        page.click("#manage button, #manage .label-wrap")
        page.set_input_files("#upload input[type=file]", str(upload))
        page.wait_for_function("() => document.querySelector('#documents')?.innerText.includes('uploads/orchards.md')",
                               timeout=120_000)
    assert (docs / "uploads" / "orchards.md").is_file()
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(index), "ASSISTANT_DOCS_DIR": str(docs)}
    out = subprocess.run([sys.executable, "-m", "assistant.serve.cli", "index"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "0 removed" in out.stdout, out.stdout + out.stderr
    with serving(docs, index, tmp_path, PORTS) as url, browser_page(url) as page:  # a restarted server
        answer = ask(page, "How many varieties of quince does the Brindlemoor orchard grow?", 1)
        assert "73" in answer and "uploads/orchards.md" in page.locator("#sources #cite-1-1").inner_text()
        page.click("#manage button, #manage .label-wrap")
        page.click("#pick input")
        page.fill("#pick input", "uploads/orchards.md")
        page.get_by_role("option", name="uploads/orchards.md").click()
        page.click("#remove")
        page.wait_for_function("() => !document.querySelector('#documents')?.innerText.includes('orchards.md')", timeout=60_000)
        shot(page, "upload-removed.png")
    assert not (docs / "uploads" / "orchards.md").exists()
