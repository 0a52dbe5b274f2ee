"""In the real browser (headless Debian chromium through Playwright) against the real server:

* corpus text stays inert in the chat: an answer quoting a line with a Markdown image, a link and a bare
  URL (all pointing at the trap server) makes no request there and produces no link to it;
* the Content-Security-Policy lets the page work: no violation on load and on asking;
* file names with URL syntax (spaces, å/ä/ö, '#', '%', '?') open from the sources panel, and a name with
  a newline opens too, or is skipped cleanly (never a dead link).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import Server, Trap
from sec_corpus import NEWLINE_NAME, NEWLINE_QUESTION, ODD_NAME, ODD_QUESTION, TRAP_QUESTION

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"  # the Debian package; never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
# Collects CSP violations from the first script on every page of the context.
CSP_PROBE = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, public_server: Server):
    """A chat page that records every request and every console error."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE")
    context.add_init_script(CSP_PROBE)
    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.requests, page.errors = requests, errors
    page.goto(public_server.url)
    expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
    yield page
    context.close()


def ask(page, question: str, answers: int) -> None:
    from playwright.sync_api import expect

    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    expect(page.get_by_test_id("bot")).to_have_count(answers, timeout=30_000)
    expect(page.locator("#new-conversation")).to_be_enabled(timeout=30_000)
    expect(page.get_by_test_id("bot").last).not_to_contain_text("Söker i underlaget")


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__csp") + [e for e in page.errors if "Content Security Policy" in e]


def test_corpus_text_is_inert_in_the_chat(page, trap: Trap):
    from playwright.sync_api import expect

    assert csp_violations(page) == [], "the page broke its own Content-Security-Policy on load"
    ask(page, TRAP_QUESTION, 1)
    bot = page.get_by_test_id("bot").last
    expect(bot).to_contain_text("rosteri i Dalarna")
    expect(page.locator("#sources")).to_contain_text("rosteri i Dalarna")
    page.wait_for_timeout(500)  # an image request would have been made while rendering

    port = f":{trap.port}"
    assert trap.paths == [], f"the browser fetched corpus URLs: {trap.paths}"
    expect(bot).to_contain_text("![bild](http://127.0.0.1:")  # the Markdown is shown as text
    assert not [u for u in page.requests if urlparse(u).port == trap.port], "a request to the trap was made"
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in links if port in h], f"corpus text became a link: {links}"
    assert page.locator(f"img[src*='{port}']").count() == 0
    for href in page.eval_on_selector_all("#chat a[href]", "links => links.map(a => a.getAttribute('href'))"):
        assert href.startswith(("#kalla-", "/doc/")), f"a link the app did not make: {href}"
    assert csp_violations(page) == [], "the page broke its own Content-Security-Policy while answering"


def test_odd_file_names_open_from_the_sources(page, public_server: Server):
    from playwright.sync_api import expect

    ask(page, ODD_QUESTION, 1)
    source = page.locator("#sources .source", has_text=ODD_NAME).first
    expect(source).to_be_visible()
    link = source.locator("a.open-doc")
    with page.context.expect_page() as opened:
        link.click()
    document = opened.value
    document.wait_for_load_state()
    expect(document.locator("h1")).to_have_text("Fritidsgården i Ödeshög")
    document.close()

    ask(page, NEWLINE_QUESTION, 2)
    sources = page.locator("#sources details.turn").first  # the newest answer
    cites_it = "Snöröjning vid kommunens förskolor" in sources.inner_text()
    if cites_it:  # indexed: its link must open the document
        href = sources.locator(".source", has_text="Snöröjning").first.locator("a.open-doc").get_attribute("href")
        response = page.context.request.get(public_server.url.rstrip("/") + href)
        assert response.status == 200, f"dead link for a file name with a newline: {href}"
        assert "fastighetsavdelningen" in response.text()
    else:  # skipped at discovery: then it is nowhere in the answer
        assert NEWLINE_NAME.split("\n")[0] not in sources.inner_text()
    assert csp_violations(page) == []
