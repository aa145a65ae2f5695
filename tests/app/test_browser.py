"""One real-browser run: Debian's chromium, driven by Playwright, against `streamlit run` on 127.0.0.1."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
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
    yield from _streamlit(tmp_path, tiny_zerank_path)


class App(str):
    """The app's base URL, with its server's process id and log."""

    def __new__(cls, base: str, pid: int, log: Path):
        app = super().__new__(cls, base)
        app.pid, app.log = pid, log
        return app


def _inotify_watches(pid: int) -> int:
    """How many inotify watches a process holds (Linux /proc; each 'inotify wd:' line is one)."""
    watches = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if "inotify" in os.readlink(fd):
                watches += (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().count("inotify wd:")
        except OSError:
            continue
    return watches


def _streamlit(tmp_path, tiny_zerank_path):
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
         "--server.port", str(port), "--server.headless", "true"],
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
    yield App(base, process.pid, tmp_path / "streamlit.log")
    process.terminate()
    # Streamlit's polling watcher keeps a 0.2 s task per watched module per session, and the interpreter
    # runs them out at exit: four sessions over the app's ~80 modules take about 20 s to stop.
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
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
        expect.set_options(timeout=60_000)  # expect() keeps its own 5 s default otherwise

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
        expect(page.get_by_role("heading", name="Reranked by reranker")).to_be_visible()
        expect(page.get_by_text("P(relevant)").first).to_be_visible()
        expect(page.get_by_text("cosine").first).to_be_visible()
        # The latency chart is sent once its expander is opened; a card's full text opens in the browser.
        expect(page.locator(".js-plotly-plot")).to_have_count(1)  # rank movement
        page.get_by_text("Latency per query: chart of this session's").click()
        expect(page.locator(".js-plotly-plot")).to_have_count(2)
        page.get_by_text("Full chunk").first.click()
        expect(page.locator("details[open]").filter(has_text="180 days").first).to_be_visible()
        box = page.get_by_role("textbox", name="Query")
        box.fill("mutex lock")
        box.press("Enter")  # opened, the chart stays open search after search
        expect(page.get_by_text("For “mutex lock”")).to_be_visible()
        page.wait_for_function("document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'")
        expect(page.locator(".js-plotly-plot")).to_have_count(2)
        page.wait_for_timeout(1500)  # let the plotly charts draw before the screenshot
        page.screenshot(path=str(ARTIFACTS / "browser-search.png"), full_page=True)

        # A shared link to a hybrid view: three columns, and each reranked row says where it came from.
        page.goto(f"{server}/search?q=When+can+insiders+sell+after+an+IPO&stage=hybrid&fusion=rrf")
        expect(page.get_by_role("heading", name="Hybrid")).to_be_visible()
        expect(page.get_by_role("heading", name="Dense (bi-encoder)")).to_be_visible()
        expect(page.get_by_role("heading", name="Reranked by reranker")).to_be_visible()
        expect(page.get_by_text("from dense #1").first).to_be_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "browser-search-hybrid.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "browser-search.png").stat().st_size > 10_000
    # .streamlit/config.toml: the checkout's .venv (where CI builds it) is not watched, so nothing overflows.
    if Path("/proc").is_dir():
        assert _inotify_watches(server.pid) == 0
    log = server.log.read_text()
    assert "Inotify queue overflowed" not in log


# --- hostile text in every user-supplied place renders inert and fetches nothing -----------------------

SCRIPT_DONE = "document.querySelector('[data-testid=stApp]').dataset.testScriptState === 'notRunning'"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def _patient_page(playwright, width: int, height: int):
    """Chromium and one page that wait up to 2 min (a loaded 2-core machine draws a first page slowly)."""
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(120_000)
    expect.set_options(timeout=120_000)
    return browser, page


def _reranked_column_shown(page) -> None:
    """The reranked column is on screen, and once the run ends it is there once. Counted only then: while
    a run is in flight Streamlit keeps the last run's elements (greyed) until this run writes over their
    places (that the page keeps its places from run to run is pinned in test_app_pages)."""
    from playwright.sync_api import expect

    heading = page.get_by_role("heading", name="Reranked by reranker")
    expect(heading.first).to_be_visible()
    page.wait_for_function(SCRIPT_DONE)
    expect(heading).to_have_count(1)


@pytest.fixture
def attacker():
    """A loopback HTTP server that records every request: the host hostile text tries to make browsers fetch."""
    import http.server
    import threading

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            requests.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()


@pytest.fixture
def hostile_server(tmp_path, tiny_zerank_path, attacker, encoder):
    """The app over a workspace that already holds files with hostile names and hostile text."""
    from core.config import Settings
    from core.ingest.workspace import FileInput, Workspace

    base, _ = attacker
    files = {
        f"![n]({base}/evil-name.png) <img src={base}/evil-img.png>.md": "Herons wade in shallow water.",
        f"[click]({base}/evil-link) :red[red] $x$ **bold**.txt": "Egrets and herons nest in colonies.",
        # A lone CR is a CommonMark line ending: two would end the HTML block the results render in.
        "notes.md": f"Herons hunt fish.\r\r![c]({base}/evil-content.png) <img src='{base}/evil-content2.png'>",
    }
    ws = Workspace(Settings(workspace=tmp_path / "workspace"), encoder)
    assert all(r.status == "indexed" for r in ws.ingest([FileInput(n, t.encode()) for n, t in files.items()]).reports)
    ws.close()
    yield from _streamlit(tmp_path, tiny_zerank_path)


def test_hostile_text_renders_inert_and_fetches_nothing_in_chromium(hostile_server, attacker):
    from urllib.parse import urlencode, urlparse

    from playwright.sync_api import expect, sync_playwright

    base, received = attacker
    seen: list[str] = []
    query = f"<b>bold</b> herons ![q]({base}/evil-query.png)"
    instruction = f"![i]({base}/evil-instr.png) <img src={base}/evil-instr2.png> :red[x]"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 3200})
        page.set_default_timeout(120_000)
        expect.set_options(timeout=60_000)  # expect() keeps its own 5 s default otherwise
        page.on("request", lambda request: seen.append(request.url))

        page.goto(f"{hostile_server}/documents")
        upload_name = "![u](evil-upload.png) <b>b</b> [l](evil-upload-link) :red[r].md"
        page.locator("input[type=file]").set_input_files(
            [{"name": upload_name, "mimeType": "text/markdown", "buffer": b"Storks migrate in flocks."}]
        )
        page.get_by_role("button", name="Index 1 file(s)").click()
        expect(page.get_by_text(f'"{upload_name}": 1 document(s)', exact=False)).to_be_visible()
        expect(page.get_by_text("4 files · 4 chunks", exact=False)).to_be_visible()
        page.get_by_role("combobox", name="Delete a file from the index").click()  # the names as options
        expect(page.get_by_role("option", name=re.compile(r"^\[click\]"))).to_be_visible()
        page.keyboard.press("Escape")

        page.goto(f"{hostile_server}/search?" + urlencode({"q": query, "instr": instruction}))
        expect(page.get_by_role("heading", name="Reranked by reranker")).to_be_visible()
        caption = page.get_by_text("Instruction given to the reranker:")
        expect(caption).to_be_visible()  # as typed, but for invisible word joiners that stop auto-links
        assert caption.text_content().replace("\u2060", "") == f"Instruction given to the reranker: {instruction}"
        page.get_by_text("Latency per query: chart of this session's searches").click()
        page.wait_for_timeout(3000)  # charts drawn, images (if any) requested
        page.screenshot(path=str(ARTIFACTS / "browser-hostile.png"), full_page=True)
        expect(page.locator(".xtick text").first).to_have_text(re.compile(r"1\. <b>bold</b>"))
        for selector in ("img[src*=evil]", "a[href*=evil]", "[style*='color: red']"):
            assert page.locator(selector).count() == 0, selector
        assert page.locator("b", has_text="bold").count() == 0
        browser.close()
    # The page's own URL carries the hostile query; no request may fetch what it names.
    assert not [url for url in seen if "evil" in urlparse(url).path or url.startswith(base)]
    assert received == []


def test_home_renders_while_the_models_load_then_shows_the_index_in_chromium(server):
    """A fresh server: Home's button is there and clickable without waiting for the models; the index
    figures come by themselves once the workspace is open (the page polls, then stops polling)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser, page = _patient_page(playwright, 1400, 1000)
        page.goto(server)
        expect(page.get_by_role("button", name="Load the demo corpus")).to_be_enabled()
        expect(page.get_by_test_id("stMetric").filter(has_text="Indexed files")).to_be_visible()
        expect(page.get_by_text("The pages open meanwhile")).to_have_count(0)
        page.get_by_role("button", name="Load the demo corpus").click()
        expect(page.get_by_text("36 indexed", exact=False)).to_be_visible()
        assert page.locator("[data-testid=stException]").count() == 0
        browser.close()


# --- many sessions: several viewers search while another uploads -------------------------------------


@pytest.fixture
def demo_server(tmp_path, tiny_zerank_path, encoder):
    from core.config import Settings
    from core.demo import DEMO_CORPUS
    from core.ingest.workspace import Workspace

    ws = Workspace(Settings(workspace=tmp_path / "workspace"), encoder)
    assert all(r.status == "indexed" for r in ws.ingest_paths([DEMO_CORPUS]).reports)
    ws.close()
    yield from _streamlit(tmp_path, tiny_zerank_path)


def test_sessions_search_while_another_uploads_in_chromium(demo_server):
    from urllib.parse import urlencode

    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    rng = random.Random(4)
    words = "ledger audit accrual hedge coupon tranche escrow lien tort statute mutex thread kernel cache".split()
    uploads = [
        {"name": f"upload-{i:03d}.txt", "mimeType": "text/plain",
         "buffer": (f"Marker zebrafinch{i:03d}. " + " ".join(rng.choice(words) for _ in range(80))).encode()}
        for i in range(300)
    ]  # fmt: skip
    queries = ["When does the lock-up period expire?", "force majeure", "What is a mutex?", "bond duration"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        expect.set_options(timeout=120_000)
        uploader, *viewers = [browser.new_context().new_page() for _ in range(4)]
        for page in (uploader, *viewers):
            page.set_default_timeout(120_000)  # a loaded 2-core machine renders a session's first page slowly
        # One viewer has picked another embedding runtime: the app holds a second Workspace on the same
        # index, and while the upload writes, that one must neither repair the upload away nor wait for it.
        # It picks before the upload starts: picking during it raced the upload's end on a 2-core machine
        # (the list was lost, or the upload was over before the first search).
        switcher = viewers[0]
        switcher.goto(f"{demo_server}/search")
        expect(switcher.get_by_role("textbox", name="Query")).to_be_visible()
        for attempt in range(3):
            switcher.get_by_role("combobox", name="Embedding runtime").click()
            try:
                switcher.get_by_role("option", name="torch", exact=True).click(timeout=20_000)
                break
            except PlaywrightTimeout:
                if attempt == 2:
                    raise
        expect(switcher.get_by_text(re.compile(r"^Embedding path: (?!.*OpenVINO)"))).to_be_visible()  # torch now
        impatient = viewers[2]
        impatient.goto(f"{demo_server}/search")
        uploader.goto(f"{demo_server}/documents")
        uploader.locator("input[type=file]").set_input_files(uploads)
        uploader.get_by_role("button", name="Index 300 file(s)").click()
        searches = 0
        while not uploader.get_by_text("300 indexed", exact=False).is_visible():
            for n, page in enumerate(viewers):
                query = queries[(searches + n) % len(queries)]
                if page is switcher:  # a new page load would be a new session with the default runtime
                    page.get_by_role("textbox", name="Query").fill(query)
                    page.get_by_role("button", name="Search", exact=True).click()
                    expect(page).to_have_url(re.compile(re.escape(urlencode({"q": query}))))
                elif page is impatient:  # a second query submitted while the first one waits for its turn
                    box = page.get_by_role("textbox", name="Query")
                    box.fill(f"{query} first")
                    box.press("Enter")
                    box.fill(query)
                    box.press("Enter")
                    expect(page.get_by_text(f"For “{query}”", exact=False)).to_be_visible()
                    expect(page).to_have_url(re.compile(re.escape(urlencode({"q": query})) + "(&|$)"))
                    expect(box).to_have_value(query)
                else:
                    page.goto(f"{demo_server}/search?" + urlencode({"q": query}))
                _reranked_column_shown(page)
                expect(page.get_by_text("P(relevant)").first).to_be_visible()
                assert page.locator("[data-testid=stException]").count() == 0
                assert page.get_by_text("The search failed").count() == 0
            searches += len(viewers)
            assert searches < 300, "the upload never finished"
        assert searches >= 3  # viewers searched while the upload ran
        # The second Workspace runs torch (float32, or bfloat16 on a CPU with native bf16), not OpenVINO.
        expect(switcher.get_by_text(re.compile(r"^Embedding path: cpu · (float32|bfloat16)"))).to_be_visible()
        expect(uploader.get_by_text("300 indexed, 0 unchanged, 0 failed", exact=False)).to_be_visible()
        assert uploader.locator("[data-testid=stException]").count() == 0

        # Every session sees the new documents, the same way.
        for page in viewers:
            page.goto(f"{demo_server}/search?" + urlencode({"q": "zebrafinch123", "stage": "bm25"}))
            expect(page.get_by_text("upload-123.txt").first).to_be_visible()
            assert page.locator("[data-testid=stException]").count() == 0
        browser.close()


def test_a_search_made_while_the_models_load_says_the_embedding_path_once_in_chromium(demo_server):
    """A fresh server: the first search is asked for while the models load. It waits for them; the
    sidebar then says the embedding path and the reranker once each, and still once each after the
    next search and after a reload (when app.py, not the page, draws the path)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser, page = _patient_page(playwright, 1400, 1000)
        page.goto(f"{demo_server}/search")
        sidebar = page.get_by_test_id("stSidebar")
        expect(page.get_by_text("a search waits for it", exact=False)).to_be_visible()  # still loading
        expect(sidebar.get_by_text(re.compile(r"^Embedding path: "))).to_have_count(0)
        box = page.get_by_role("textbox", name="Query")
        for query in ("What is a mutex?", "force majeure"):
            box.fill(query)
            box.press("Enter")
            expect(page.get_by_text(f"For “{query}”", exact=False)).to_be_visible()
            _reranked_column_shown(page)
            expect(sidebar.get_by_text(re.compile(r"^Embedding path: "))).to_have_count(1)
            expect(sidebar.get_by_text(re.compile(r"^Reranker: "))).to_have_count(1)
            assert page.locator("[data-testid=stException]").count() == 0
        page.reload()
        expect(page.get_by_text("For “force majeure”", exact=False)).to_be_visible()
        page.wait_for_function(SCRIPT_DONE)
        expect(sidebar.get_by_text(re.compile(r"^Embedding path: "))).to_have_count(1)
        expect(sidebar.get_by_text(re.compile(r"^Reranker: "))).to_have_count(1)
        browser.close()


# --- the Experiments page: three pipelines on the demo judgments, then the snapshot by its URL -----------


@pytest.fixture
def experiment_server(tmp_path, tiny_zerank_path):
    """The app over a workspace where three pipelines were saved by the command line."""
    env = {**os.environ, "RERANK_WORKSPACE": str(tmp_path / "workspace"), "HF_HUB_OFFLINE": "1"}
    for name, spec in (("dense", "dense"), ("BM25", "bm25"), ("dense + reranker", f"dense+{tiny_zerank_path}@5")):
        saved = subprocess.run(
            [sys.executable, "-m", "core", "pipelines", "save", name, spec],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert saved.returncode == 0, saved.stderr
    yield from _streamlit(tmp_path, tiny_zerank_path)


def test_experiments_page_runs_three_pipelines_and_opens_the_snapshot_by_url_in_chromium(experiment_server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser, page = _patient_page(playwright, 1500, 3200)
        page.goto(f"{experiment_server}/experiments")
        expect(page.get_by_role("button", name="Run the experiment")).to_be_visible()
        k = page.get_by_label("Documents per query (k)")
        k.fill("10")
        k.press("Enter")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Run the experiment").click()
        expect(page.get_by_role("heading", name="One query, every pipeline")).to_be_visible()
        expect(page.get_by_text("dense + reranker").first).to_be_visible()
        expect(page.get_by_text("P(relevant)").first).to_be_visible()
        expect(page.get_by_text("dense (baseline)")).to_be_visible()
        match = re.search(r"snapshot=([0-9TZ]+-[0-9a-f]{6})", page.url)
        assert match, page.url
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / "browser-experiments.png"), full_page=True)

        # The snapshot and one query inside it, opened by a link in a fresh page.
        linked = browser.new_page(viewport={"width": 1500, "height": 3200})
        linked.goto(f"{experiment_server}/experiments?snapshot={match.group(1)}&query=q7")
        expect(linked.get_by_role("heading", name="One query, every pipeline")).to_be_visible()
        chosen = linked.get_by_role("combobox", name="Query (most disagreement first)")
        expect(chosen).to_have_value(re.compile(r"^q7: Is it better to invest a lump sum"))
        linked.screenshot(path=str(ARTIFACTS / "browser-experiments-linked.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "browser-experiments.png").stat().st_size > 10_000
