"""The app's Streamlit configuration (.streamlit/config.toml): what it promises, and that Streamlit reads it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from core.config import DEFAULT_MAX_FILE_MB

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_no_usage_statistics_leave_the_machine():
    assert CONFIG["browser"]["gatherUsageStats"] is False


def test_the_upload_limit_is_the_apps_own():
    assert CONFIG["server"]["maxUploadSize"] == DEFAULT_MAX_FILE_MB


def test_the_virtual_environment_is_not_watched():
    assert CONFIG["server"]["fileWatcherType"] in ("poll", "none")  # inotify would watch the checkout recursively
    assert ".venv" in CONFIG["server"]["folderWatchBlacklist"]


def test_streamlit_reads_it_from_the_checkout():
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout  # fmt: skip
    assert "\ngatherUsageStats = false" in shown
    assert f"\nmaxUploadSize = {DEFAULT_MAX_FILE_MB:g}" in shown
    assert '\nfileWatcherType = "none"' in shown


def test_no_full_garbage_collection_after_every_run():  # a hidden option: `config show` leaves it out
    # A full collection over torch's and transformers' objects after each run held the browser's
    # results back by 100-200 ms on a 2-core CPU (docs/performance.md, benchmarks/bench_ui.py).
    assert CONFIG["runner"]["postScriptGC"] is False
    read = subprocess.run(
        [sys.executable, "-c", "from streamlit import config; print(config.get_option('runner.postScriptGC'))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert read.strip() == "False"
