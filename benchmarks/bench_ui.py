"""How the app feels in a real browser: cold start, click to results, many sessions (a benchmark, not a test).

Drives Debian's chromium (Playwright) against `streamlit run app.py` on 127.0.0.1 and prints:

- cold start: from `streamlit run` to a clickable "Load the demo corpus" button on Home, against a
  minimal Streamlit page (one button) started the same way, repeats interleaved; then from a click on
  the Documents and Evaluate links to each page drawn (while the models load), and to the index figures
  on Home (the workspace open);
- click to results: on the demo corpus with no reranker, from the Search click to the finished render,
  beside the app's own search time (its "Total" metric) for the same searches;
- many sessions: N viewers search in a loop while one more session uploads M documents; click to
  results per search, errors, and how often a viewer was told it waits for another search.

    python benchmarks/bench_ui.py                       # all three
    python benchmarks/bench_ui.py --only search --searches 40
    python benchmarks/bench_ui.py --only many --sessions 6 --uploads 300 --json

Run it on a quiet machine: every figure is wall time on a shared CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_index_search import percentile  # noqa: E402 (the sibling benchmark's, beside this file)

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
MINIMAL_PAGE = 'import streamlit as st\n\nst.title("Minimal")\nst.button("Go")\n'
# Results are shown when the caption above them names the query and the script run is over (Streamlit
# marks its root with the state). The URL alone is not enough: under load the browser may learn of the
# new URL before it learns that a run has started.
RESULTS_SHOWN = """(q) => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'
    && [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
        .some(c => c.textContent.startsWith(`For “${q}”`))"""
WORDS = "ledger audit accrual hedge coupon tranche escrow lien tort statute mutex thread kernel cache".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class Server:
    """`streamlit run SCRIPT` in its own process, with the app's settings in the environment."""

    def __init__(self, script: Path, workspace: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workspace.parent / f"streamlit-{self.port}.log", "w")
        environ = {**os.environ, "RERANK_WORKSPACE": str(workspace), "RERANK_RERANKER": "none",
                   "HF_HUB_OFFLINE": "1", **(env or {})}  # fmt: skip
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=script.parent, env=environ, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.05)
        raise RuntimeError(f"streamlit did not start on {self.url}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def demo_workspace(folder: Path) -> Path:
    """A workspace with the demo corpus indexed by the app's own code (the default bi-encoder and runtime)."""
    from core.config import Settings
    from core.demo import DEMO_CORPUS
    from core.embedding.bi_encoder import BiEncoder
    from core.ingest.workspace import Workspace

    settings = Settings.from_env(workspace=folder, reranker="none")
    encoder = BiEncoder(settings.bi_encoder, settings.device, settings.dtype, settings.embed_backend)
    workspace = Workspace(settings, encoder)
    reports = workspace.ingest_paths([DEMO_CORPUS]).reports
    workspace.close()
    assert all(r.status in ("indexed", "unchanged") for r in reports), [r.message for r in reports]
    return folder


async def _goto_until_served(page, url: str, deadline: float) -> None:
    while True:
        try:
            await page.goto(url, wait_until="commit", timeout=5_000)
            return
        except Exception:
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.05)


# Pages a new user may open while the models load, and a text each shows once drawn (cold start, the app only).
OTHER_PAGES = (("Documents", "Upload files"), ("Evaluate", "Run the evaluation"))


async def cold_start(browser, script: Path, workspace: Path, button: str, also: str | None) -> dict:
    """Seconds from starting the server to a visible, enabled ``button``; then (with ``also``: the app) from
    a click on each of OTHER_PAGES' links to that page drawn, and from the start to the text ``also`` on
    the first page."""
    server = Server(script, workspace)
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        await _goto_until_served(page, server.url, time.time() + 120)
        target = page.get_by_role("button", name=button)
        await target.wait_for(state="visible", timeout=120_000)
        while not await target.is_enabled():
            await asyncio.sleep(0.01)
        figures = {"clickable_s": time.perf_counter() - server.started}
        for name, text in OTHER_PAGES if also else ():  # as a user does: the sidebar's link, in the same tab
            clicked = time.perf_counter()
            await page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
            await page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=120_000)
            figures[f"{name.lower()}_drawn_s"] = time.perf_counter() - clicked
        if also:
            await page.get_by_test_id("stSidebarNav").get_by_role("link", name="Home").click()
        if also:
            await page.get_by_text(also).first.wait_for(state="visible", timeout=120_000)
            figures["ready_s"] = time.perf_counter() - server.started
        return figures
    finally:
        await page.close()
        server.stop()


async def search_once(page, query: str) -> tuple[float, str]:
    box = page.get_by_role("textbox", name="Query")
    await box.fill(query)
    button = page.get_by_role("button", name="Search", exact=True)
    started = time.perf_counter()
    await button.click()
    await page.wait_for_function(RESULTS_SHOWN, arg=query, polling="raf")
    elapsed = time.perf_counter() - started
    waited = await page.get_by_text("for other sessions' work before this search ran").count()
    return elapsed, "waited" if waited else "ok"


async def app_total_ms(page) -> float | None:
    metric = page.get_by_test_id("stMetric").filter(has_text="Total")
    with contextlib.suppress(Exception):
        text = await metric.get_by_test_id("stMetricValue").inner_text(timeout=2_000)
        return float(text.split()[0])
    return None


def _queries() -> list[str]:
    from core.demo import suggested_queries

    return [item["query"] for item in suggested_queries()] or ["lock-up period", "What is a mutex?"]


async def click_to_results(browser, workspace: Path, searches: int) -> dict:
    server = Server(ROOT / "app.py", workspace)
    server.wait_healthy()
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        await page.goto(f"{server.url}/search")
        await page.get_by_role("textbox", name="Query").wait_for(timeout=120_000)
        queries = _queries()
        clicks, totals = [], []
        for n in range(searches + 2):  # two warm-up searches: the first loads the query path
            # A suffix makes every search new to the app (never a cached result) yet the same work.
            query = f"{queries[n % len(queries)]} ({n})"
            elapsed, _ = await search_once(page, query)
            total = await app_total_ms(page)
            if n >= 2:
                clicks.append(elapsed * 1000)
                if total is not None:
                    totals.append(total)
        return {
            "searches": len(clicks),
            "click_to_results_p50_ms": statistics.median(clicks),
            "click_to_results_p95_ms": percentile(clicks, 95),
            "app_total_p50_ms": statistics.median(totals) if totals else None,
        }
    finally:
        await page.close()
        server.stop()


def _dump_stacks(server: Server, path: Path) -> None:
    """The server's Python stacks (py-spy, where installed): what a search that never finished waits on."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if Path(spy).exists():
        with open(path, "w") as out:
            subprocess.run([spy, "dump", "--pid", str(server.process.pid)], stdout=out, stderr=subprocess.STDOUT,
                           timeout=60, check=False)  # fmt: skip


async def many_sessions(browser, workspace: Path, sessions: int, uploads: int, keep: Path | None) -> dict:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    server = Server(ROOT / "app.py", workspace)
    server.wait_healthy()
    rng = random.Random(4)
    files = [
        {"name": f"upload-{i:03d}.txt", "mimeType": "text/plain",
         "buffer": (f"Marker zebrafinch{i:03d}. " + " ".join(rng.choice(WORDS) for _ in range(80))).encode()}
        for i in range(uploads)
    ]  # fmt: skip
    queries = _queries()
    clicks: list[float] = []
    totals: list[float] = []
    outcomes: dict[str, int] = {"ok": 0, "waited": 0, "error": 0, "timeout": 0}
    upload_done = asyncio.Event()
    upload_started: list[float] = []
    slowest: list[tuple[float, int, int, float | None]] = []  # (seconds, viewer, search, start after the upload's)

    async def viewer(n: int) -> None:
        page = await (await browser.new_context()).new_page()
        page.set_default_timeout(60_000)
        await page.goto(f"{server.url}/search")
        await page.get_by_role("textbox", name="Query").wait_for()
        await ready.wait()
        i = 0
        while not upload_done.is_set() or i < 3:
            query = f"{queries[(n + i) % len(queries)]} [{n}.{i}]"
            try:
                elapsed, outcome = await search_once(page, query)
            except PlaywrightTimeout:  # counted, kept for a look, and the viewer starts over on a fresh page
                outcomes["timeout"] += 1
                if keep:
                    await page.screenshot(path=str(keep / f"timeout-{n}-{i}.png"))
                    _dump_stacks(server, keep / f"timeout-{n}-{i}.stacks.txt")
                await page.goto(f"{server.url}/search")
                i += 1
                continue
            failed = (
                await page.get_by_test_id("stException").count() + await page.get_by_text("The search failed").count()
            )
            outcomes["error" if failed else outcome] += 1
            clicks.append(elapsed * 1000)
            started_s = time.perf_counter() - elapsed - upload_started[0] if upload_started else None
            slowest.append((elapsed, n, i, started_s))
            total = await app_total_ms(page)
            if total is not None:
                totals.append(total)
            i += 1

    async def uploader() -> float:
        page = await (await browser.new_context()).new_page()
        page.set_default_timeout(900_000)
        await page.goto(f"{server.url}/documents")
        await page.locator("input[type=file]").set_input_files(files)
        # The list of indexed files shows once the models and the index are open: searches start after
        # that, or the first ones time the cold load (the page says "Loading…" meanwhile).
        await page.get_by_test_id("stDataFrame").first.wait_for(timeout=300_000)
        workspace_open.set()
        await ready.wait()
        started = time.perf_counter()
        upload_started.append(started)
        await page.get_by_role("button", name=f"Index {uploads} file(s)").click()
        await page.get_by_text(f"{uploads} indexed", exact=False).first.wait_for()
        upload_done.set()
        return time.perf_counter() - started

    ready, workspace_open = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(viewer(n)) for n in range(sessions)]
    upload = asyncio.create_task(uploader())
    await asyncio.sleep(15)  # every session has its page before the upload and the searches start
    await workspace_open.wait()
    ready.set()
    try:
        upload_s, *_ = await asyncio.gather(upload, *tasks)
    finally:
        server.stop()
    return {
        "sessions": sessions,
        "uploaded_files": uploads,
        "upload_s": upload_s,
        "searches": len(clicks),
        "click_to_results_p50_ms": statistics.median(clicks),
        "click_to_results_p95_ms": percentile(clicks, 95),
        "click_to_results_max_ms": max(clicks),
        "app_total_p50_ms": statistics.median(totals) if totals else None,
        "app_total_max_ms": max(totals) if totals else None,
        **{f"searches_{name}": count for name, count in outcomes.items()},
        "slowest_three": [
            f"{seconds:.1f} s: viewer {n}'s search {i}, started "
            + (f"{start:+.1f} s after the upload's click" if start is not None else "before the upload's click")
            for seconds, n, i, start in sorted(slowest, key=lambda row: row[0], reverse=True)[:3]
        ],
    }


async def main_async(args) -> dict:
    from playwright.async_api import async_playwright

    figures: dict = {"cpu": cpu_model(), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        tmp_path = Path(tmp)
        workspace = demo_workspace(tmp_path / "workspace")
        minimal = tmp_path / "minimal" / "minimal.py"
        minimal.parent.mkdir()
        minimal.write_text(MINIMAL_PAGE)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            if args.only in (None, "cold"):
                runs: dict[str, list[dict]] = {"minimal": [], "app": []}
                for _ in range(args.repeats):
                    runs["minimal"].append(await cold_start(browser, minimal, workspace, "Go", None))
                    runs["app"].append(
                        await cold_start(browser, ROOT / "app.py", workspace, "Load the demo corpus", "Indexed files")
                    )
                minimal_s = statistics.median(r["clickable_s"] for r in runs["minimal"])
                app_s = statistics.median(r["clickable_s"] for r in runs["app"])
                figures["cold_start"] = {
                    "minimal_clickable_s": minimal_s,
                    "app_clickable_s": app_s,
                    "ratio": app_s / minimal_s,
                    "app_index_shown_s": statistics.median(r["ready_s"] for r in runs["app"]),
                    **{
                        f"app_{key}": statistics.median(r[key] for r in runs["app"])
                        for key in runs["app"][0]
                        if key.endswith("_drawn_s")
                    },
                    "repeats": args.repeats,
                }
            if args.only in (None, "search"):
                search = await click_to_results(browser, workspace, args.searches)
                if search["app_total_p50_ms"]:
                    search["ratio_to_app_total_plus_150ms"] = search["click_to_results_p50_ms"] / (
                        1.5 * search["app_total_p50_ms"] + 150
                    )
                figures["search"] = search
            if args.only in (None, "many"):
                figures["many"] = await many_sessions(browser, workspace, args.sessions, args.uploads, args.keep)
            await browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["cold", "search", "many"])
    parser.add_argument("--repeats", type=int, default=3, help="cold starts of each page, interleaved")
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--keep", type=Path, default=None, help="a folder for a screenshot and the server's stacks per timed-out search"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    figures = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"CPU: {figures['cpu']} ({figures['cores']} cores)")
    for section, values in figures.items():
        if isinstance(values, dict):
            print(f"{section}:")
            for name, value in values.items():
                print(f"  {name}: {value:.3g}" if isinstance(value, float) else f"  {name}: {value}")


if __name__ == "__main__":
    main()
