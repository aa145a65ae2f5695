"""One real-browser run: Debian's chromium, driven by Playwright, against `streamlit run` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="Debian chromium is not installed"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, tiny_zerank_path):
    port = _free_port()
    env = {
        **os.environ,
        "RERANK_WORKSPACE": str(tmp_path / "workspace"),
        "RERANK_RERANKER": str(tiny_zerank_path),
        "HF_HUB_OFFLINE": "1",
    }
    log = open(tmp_path / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
    yield base
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_upload_query_and_both_columns_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1500, "height": 3200})
        page.set_default_timeout(120_000)

        page.goto(f"{server}/documents")
        page.locator("input[type=file]").set_input_files(
            [
                {
                    "name": "ipo-lockup.md",
                    "mimeType": "text/markdown",
                    "buffer": b"# IPO lock-up\n\nInsiders may not sell their shares until the lock-up period "
                    b"expires, usually 180 days after the offering.",
                },
                {
                    "name": "mutex.txt",
                    "mimeType": "text/plain",
                    "buffer": b"A mutex lock lets one thread at a time into a critical section.",
                },
            ]
        )
        page.get_by_role("button", name="Index 2 file(s)").click()
        expect(page.get_by_text('"ipo-lockup.md": 1 document(s)')).to_be_visible()
        expect(page.get_by_text('"mutex.txt": 1 document(s)')).to_be_visible()

        page.goto(f"{server}/search?q=When+can+insiders+sell+after+an+IPO")
        expect(page.get_by_role("heading", name="Dense (bi-encoder)")).to_be_visible()
        expect(page.get_by_role("heading", name="Reranked by model")).to_be_visible()
        expect(page.get_by_text("P(relevant)").first).to_be_visible()
        expect(page.get_by_text("cosine").first).to_be_visible()
        page.wait_for_timeout(1500)  # let the plotly charts draw before the screenshot
        page.screenshot(path=str(ARTIFACTS / "browser-search.png"), full_page=True)

        # A shared link to a hybrid view: three columns, and each reranked row says where it came from.
        page.goto(f"{server}/search?q=When+can+insiders+sell+after+an+IPO&stage=hybrid&fusion=rrf")
        expect(page.get_by_role("heading", name="Hybrid")).to_be_visible()
        expect(page.get_by_role("heading", name="Dense (bi-encoder)")).to_be_visible()
        expect(page.get_by_role("heading", name="Reranked by model")).to_be_visible()
        expect(page.get_by_text("from dense #1").first).to_be_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "browser-search-hybrid.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "browser-search.png").stat().st_size > 10_000
