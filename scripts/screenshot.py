"""The README's picture (docs/screenshot.png): the chat as a new user sees it after `make run`.

The real server over the shipped corpus (its index built in a temporary folder, the repo's index/ left
alone), Debian chromium through Playwright, one starter question, its sources. Run by hand after a change
that shows in the chat (`make screenshot`); the browser tests save their own picture under tests/artifacts
but use a small test corpus, which is not what `make run` shows.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # the Debian package (scripts/ensure-chromium.sh); never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
QUESTION = "Vilka kommuner var med i utvecklingsnätverket?"  # a starter question of the chat (ui/app.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    """The first start exports the models to ONNX and builds the index: minutes, not seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server did not start in {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def shoot(url: str, out: Path, question: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE").new_page()
            page.goto(url)
            expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name=question).click()
            expect(page.get_by_test_id("bot")).to_have_count(1, timeout=60_000)
            expect(page.locator("#new-conversation")).to_be_enabled(timeout=60_000)
            expect(page.locator("#sources mark").first).to_be_visible(timeout=60_000)
            page.evaluate("window.scrollTo(0, 0)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--question", default=QUESTION, help="a starter question's button text")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (as root) first")
    with tempfile.TemporaryDirectory(prefix="screenshot-") as tmp:
        root = Path(tmp)
        port = free_port()
        # the models cached under ASSISTANT_HOME stay shared (no second export); the rest is the defaults'
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") or k == "ASSISTANT_HOME"}
        env.update({"ASSISTANT_FEEDBACK_DB": str(root / "feedback.sqlite3"), "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
        log = root / "server.log"
        cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--index", str(root / "index")]
        with open(log, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_up(url, proc, log)
            shoot(url, args.out, args.question)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
