"""Catalog and store stay in step: through kill -9 at any point of a write, and across the change to hashed ids."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
CHUNKING = {"chunk_tokens": 64, "chunk_overlap": 8}  # as tests/crash_ingest.py indexes


@pytest.fixture(scope="module")
def torch_encoder():
    from core.embedding import BiEncoder

    return BiEncoder(backend="torch")  # what the child process embeds with, so "unchanged" means the same


def _child(
    workspace: Path, *args: str, kill_at: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.crash_ingest", str(workspace), *args]
    if kill_at:
        command += ["--kill-at", kill_at]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )  # fmt: skip


def _open(workspace: Path, encoder) -> Workspace:
    """Open after a crash: the dead process's Milvus Lite server lets go of the file within moments."""
    settings = Settings(workspace=workspace, embed_backend="torch", **CHUNKING)
    deadline = time.monotonic() + 30
    while True:
        try:
            return Workspace(settings, encoder)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _index(workspace: Path, folder: Path, encoder) -> Workspace:
    ws = _open(workspace, encoder)
    summary = ws.ingest_paths([folder])
    assert all(r.status != "error" for r in summary.reports)
    return ws


def _assert_consistent(ws: Workspace, encoder) -> dict[str, set[str]]:
    """Catalog and store hold the same ids, the journal is empty, search works; returns text per file."""
    stored: dict[str, set[str]] = {}
    ids = set()
    for batch in ws.store.iter_chunks():
        for chunk in batch:
            ids.add(chunk.chunk_id)
            stored.setdefault(chunk.source, set()).add(chunk.text)
    assert ids == ws.catalog.all_chunk_ids()
    assert ws.catalog.unowned() == []
    assert {f.source for f in ws.files()} == set(stored)
    assert all(len(ws.catalog.chunk_ids(f.source)) == f.chunks for f in ws.files())
    if ids:
        assert ws.store.search(encoder.encode_query("interest rates"), 5)
    return stored


def _version(n: int) -> str:
    return "\n\n".join(f"Version {n}, section {i}: central banks move interest rates to steer inflation." * 3
                       for i in range(6))  # fmt: skip


@pytest.mark.parametrize(("point", "survivor"), [("mid-upsert", 1), ("before-record", 1), ("before-release", 2)])
def test_kill_9_during_a_rewrite_leaves_one_whole_version(tmp_path, torch_encoder, point, survivor):
    folder, workspace = tmp_path / "docs", tmp_path / "ws"
    folder.mkdir()
    (folder / "rates.md").write_text(_version(1))
    (folder / "other.txt").write_text("Bond ladders spread reinvestment risk over time.")
    _index(workspace, folder, torch_encoder).close()
    (folder / "rates.md").write_text(_version(2))

    killed = _child(workspace, "index", str(folder), kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    ws = _open(workspace, torch_encoder)
    stored = _assert_consistent(ws, torch_encoder)
    assert all(text.startswith(f"Version {survivor}") for text in stored["rates.md"])
    assert "\n\n".join(sorted(stored["rates.md"])) and len(stored["rates.md"]) == ws.catalog.get("rates.md").chunks
    ws.close()

    ws = _index(workspace, folder, torch_encoder)  # a re-index completes the change
    assert all(text.startswith("Version 2") for text in _assert_consistent(ws, torch_encoder)["rates.md"])
    ws.close()


def test_kill_9_during_a_delete_finishes_the_delete_on_open(tmp_path, torch_encoder):
    folder, workspace = tmp_path / "docs", tmp_path / "ws"
    folder.mkdir()
    (folder / "rates.md").write_text(_version(1))
    (folder / "other.txt").write_text("Bond ladders spread reinvestment risk over time.")
    _index(workspace, folder, torch_encoder).close()
    killed = _child(workspace, "delete", "rates.md", kill_at="mid-delete")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ws = _open(workspace, torch_encoder)
    assert set(_assert_consistent(ws, torch_encoder)) == {"other.txt"}
    ws.close()


def test_kill_9_at_random_points_of_an_ingest(tmp_path, torch_encoder):
    folder, workspace = tmp_path / "docs", tmp_path / "ws"
    folder.mkdir()
    words = "rates inflation bonds equity credit liquidity duration hedging swaps futures".split()
    rng = random.Random(11)
    for i in range(40):
        (folder / f"note-{i:02d}.txt").write_text(
            "\n\n".join(" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(4))
        )
    delays = []
    for attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_ingest", str(workspace), "index", str(folder)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        assert process.stdout.readline().strip() == "ready"
        delays.append(rng.uniform(0.2, 4.0))
        time.sleep(delays[-1])
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        ws = _open(workspace, torch_encoder)
        _assert_consistent(ws, torch_encoder)
        ws.close()
    ws = _index(workspace, folder, torch_encoder)
    assert len(_assert_consistent(ws, torch_encoder)) == 40, delays
    ws.close()


def test_an_index_with_readable_ids_is_rebuilt_under_hashed_ids(settings, encoder):
    """Ids made before they were hashed carry file names ("o'brien.txt:0"): they are copied under hashed ids."""
    from core.catalog import Catalog, IndexedFile
    from core.chunking import Chunk
    from core.vector_store import MilvusVectorStore

    texts = {"o'brien.txt": "Irish surnames and their origins.", "back\\slash.txt": "Escaping in file paths."}
    settings.workspace.mkdir(parents=True)
    store = MilvusVectorStore(settings.resolved_milvus_uri, encoder.dim)
    catalog = Catalog(settings.workspace / "catalog.sqlite")
    catalog.set_meta("bi_encoder", encoder.model_id)
    rows = []
    for name, text in texts.items():
        chunk = Chunk(f"{name}:0", name, name, name, None, 0, len(text), text)
        rows.append({**chunk.to_dict(), "page": 0, "vector": encoder.encode([text])[0].tolist()})
        catalog.record(IndexedFile(name, "old-hash", len(text), 1, 1, "2026-01-01T00:00:00+00:00", "x"), [f"{name}:0"])
    orphan = Chunk("gone.txt:0", "gone.txt", "gone.txt", "", None, 0, 4, "gone")
    rows.append({**orphan.to_dict(), "page": 0, "vector": np.ones(encoder.dim).tolist()})
    store._client.insert(store.collection, rows)  # the old ids could never pass today's id check
    store.close()
    catalog.close()

    ws = Workspace(settings, encoder)
    assert ws.store.collection == "chunks_r1" and ws.store.count() == 2  # the orphan is not copied
    assert not ws.store._client.has_collection("chunks")
    stored = {c.chunk_id: c for batch in ws.store.iter_chunks() for c in batch}
    assert set(stored) == ws.catalog.all_chunk_ids() and all(len(cid) == 32 for cid in stored)
    assert ws.store.search(encoder.encode_query("surnames"), 1)[0].chunk.source == "o'brien.txt"
    assert ws.delete("back\\slash.txt") == 1 and ws.store.count() == 1
    ws.close()

    ws = Workspace(settings, encoder)  # the switch is remembered
    assert ws.store.collection == "chunks_r1" and [f.source for f in ws.files()] == ["o'brien.txt"]
    ws.close()
