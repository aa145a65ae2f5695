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
from core.index.store import VectorStoreError
from core.ingest.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
CHUNKING = {"chunk_tokens": 64, "chunk_overlap": 8}  # as tests/crash_ingest.py indexes


@pytest.fixture(scope="module")
def torch_encoder():
    from core.embedding.bi_encoder import BiEncoder

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
        except VectorStoreError as exc:  # only the lock of a server still shutting down is waited out
            if "cannot open Milvus" not in str(exc) or time.monotonic() > deadline:
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
    delays, new_versions = [], []
    for attempt in range(3):
        for i in range(40):  # every file changes, so every attempt rewrites every file
            paragraphs = (" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(4))
            (folder / f"note-{i:02d}.txt").write_text(f"Attempt {attempt}.\n\n" + "\n\n".join(paragraphs))
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_ingest", str(workspace), "index", str(folder), "--announce-writes"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        )  # fmt: skip
        assert process.stdout.readline().strip() == "ready"
        assert process.stdout.readline().strip() == "writing"  # the kill lands in the write phase
        delays.append(round(rng.uniform(0.0, 0.45), 2))  # writing 40 files takes about 0.5 s here
        time.sleep(delays[-1])
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        ws = _open(workspace, torch_encoder)
        stored = _assert_consistent(ws, torch_encoder)
        new_versions.append(sum(any(t.startswith(f"Attempt {attempt}") for t in texts) for texts in stored.values()))
        ws.close()
    ws = _index(workspace, folder, torch_encoder)
    assert len(_assert_consistent(ws, torch_encoder)) == 40, (delays, new_versions)
    ws.close()


def _legacy_workspace(settings, encoder, texts: dict[str, list[str]]) -> None:
    """A workspace as versions before hashed ids left it: readable ids in the catalog and the store,
    and one orphan row no file owns."""
    from core.chunks import Chunk
    from core.index.milvus import MilvusVectorStore
    from core.ingest.catalog import Catalog, IndexedFile

    settings.workspace.mkdir(parents=True)
    store = MilvusVectorStore(settings.resolved_milvus_uri, encoder.dim)
    catalog = Catalog(settings.workspace / "catalog.sqlite")
    catalog.set_meta("bi_encoder", encoder.model_id)
    rows = []
    for name, chunks in texts.items():
        ids = [f"{name}:{n}" for n in range(len(chunks))]
        for n, text in enumerate(chunks):
            chunk = Chunk(ids[n], name, name, name, None, 100 * n, 100 * n + len(text), text)
            rows.append({**chunk.to_dict(), "page": 0, "vector": encoder.encode([text])[0].tolist()})
        entry = IndexedFile(name, "old-hash", 100, 1, len(ids), "2026-01-01T00:00:00+00:00", "x")
        catalog.record(entry, ids)
    orphan = Chunk("gone.txt:0", "gone.txt", "gone.txt", "", None, 0, 4, "gone")
    rows.append({**orphan.to_dict(), "page": 0, "vector": np.ones(encoder.dim).tolist()})
    store._client.insert(store.collection, rows)  # the old ids could never pass today's id check
    store.close()
    catalog.close()


def test_rows_a_rebuild_cannot_read_keep_the_old_collection_and_their_file_is_marked(settings, encoder, monkeypatch):
    import core.index.milvus

    monkeypatch.setattr(core.index.milvus, "MAX_SEARCH_LIMIT", 8)  # as if a file held over 16,384 chunks
    _legacy_workspace(settings, encoder, {"new\nline.txt": [f"Part {n} of a long file." for n in range(30)],
                                          "plain.txt": ["A plain file."]})  # fmt: skip
    ws = Workspace(settings, encoder)
    assert ws.store._client.has_collection("chunks") and ws.catalog.get_meta("legacy_collection") == "chunks"
    long_file, plain = ws.catalog.get("new\nline.txt"), ws.catalog.get("plain.txt")
    assert long_file.content_hash == "" and 0 < long_file.chunks < 30  # re-indexed on its next upload
    assert plain.content_hash == "old-hash" and plain.chunks == 1
    stored = {cid for batch in ws.store.iter_ids() for cid in batch}
    assert stored == ws.catalog.all_chunk_ids()
    ws.close()


def test_an_index_with_readable_ids_is_rebuilt_under_hashed_ids(settings, encoder):
    """Ids made before they were hashed carry file names ("o'brien.txt:0"): they are copied under hashed ids."""
    texts = {
        "o'brien.txt": ["Irish surnames and their origins."],
        "back\\slash.txt": ["Escaping in file paths."],
        'say "hi".txt': ["Greetings in many languages."],  # the largest id: pymilvus' own iterator fails on it
        "new\nline.txt": ["Line breaks in file names."],
    }
    _legacy_workspace(settings, encoder, texts)

    ws = Workspace(settings, encoder)
    assert ws.store.collection == "chunks_r1" and ws.store.count() == 4  # the orphan is not copied
    assert not ws.store._client.has_collection("chunks")
    stored = {c.chunk_id: c for batch in ws.store.iter_chunks() for c in batch}
    assert set(stored) == ws.catalog.all_chunk_ids() and all(len(cid) == 32 for cid in stored)
    assert ws.store.search(encoder.encode_query("surnames"), 1)[0].chunk.source == "o'brien.txt"
    assert ws.delete("back\\slash.txt") == 1 and ws.store.count() == 3
    assert all(f.content_hash == "old-hash" for f in ws.files())  # every row came across
    ws.close()

    ws = Workspace(settings, encoder)  # the switch is remembered
    assert ws.store.collection == "chunks_r1"
    assert sorted(f.source for f in ws.files()) == ["new\nline.txt", "o'brien.txt", 'say "hi".txt']
    ws.close()


def _legacy_store(tmp_path, ids: list[str]):
    """A Milvus Lite collection holding rows under ids of the old, readable kind (inserted directly)."""
    from core.index.milvus import MilvusVectorStore

    store = MilvusVectorStore(str(tmp_path / "legacy.db"), 4)
    rows = [
        {"chunk_id": cid, "vector": [1.0, float(i), 0.0, 0.0], "source": cid, "doc_id": cid, "title": "",
         "page": 0, "start": i, "end": i + 1, "text": f"text {i}"}
        for i, cid in enumerate(ids)
    ]  # fmt: skip
    store._client.insert(store.collection, rows)
    return store


LEGACY_IDS = (
    [f'say "hi" {i}.txt:0' for i in range(10)]
    + [f"back\\slash {i}.txt:0" for i in range(10)]
    + [f"new\nline.txt:{i}" for i in range(25)]  # one file's chunks: a stretch no literal can bound
    + [f"cr\rreturn {i}.txt:0" for i in range(5)]
    + [f"tab\t{i}:0" for i in range(5)]
    + [f"z') OR 1=1 -- {i}.txt:0" for i in range(5)]
)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_a_legacy_collection_is_read_whole_whatever_its_ids(tmp_path, batch_size):
    store = _legacy_store(tmp_path, LEGACY_IDS)
    read = [c.chunk_id for chunks, _ in store.scan_vectors(batch_size=batch_size) for c in chunks]
    assert sorted(read) == sorted(LEGACY_IDS)  # every row once: none missed, none twice
    store.close()


def test_a_stretch_too_long_to_page_through_is_stepped_over_and_counted(tmp_path, monkeypatch):
    import core.index.milvus

    monkeypatch.setattr(core.index.milvus, "MAX_SEARCH_LIMIT", 8)  # as if the stretch held over 16,384 rows
    store = _legacy_store(tmp_path, LEGACY_IDS)
    read = [c.chunk_id for chunks, _ in store.scan_vectors(batch_size=3) for c in chunks]
    assert len(read) == len(set(read)) and set(read) <= set(LEGACY_IDS)
    assert {cid for cid in LEGACY_IDS if "\n" not in cid} <= set(read)  # only the unbounded stretch is short
    assert store.count() - len(read) > 0
    store.close()


def test_a_second_workspace_on_the_folder_waits_for_a_write_in_progress(settings, encoder):
    """Sessions that pick another embedding runtime open a second Workspace on the same index: its
    start-up repair must not take a write in progress for leftovers of a crash and delete it."""
    import threading

    from core.ingest.workspace import FileInput

    first = Workspace(settings, encoder)
    in_write, release = threading.Event(), threading.Event()
    upsert = first.store.upsert

    def slow_upsert(chunks, vectors):
        upsert(chunks, vectors)
        in_write.set()  # the rows are in the store, their ids only in the journal
        assert release.wait(30)

    first.store.upsert = slow_upsert
    writer = threading.Thread(target=first.ingest, args=([FileInput("rates.md", _version(1).encode())],))
    writer.start()
    assert in_write.wait(120)
    opened: list[Workspace] = []
    opener = threading.Thread(target=lambda: opened.append(Workspace(settings, encoder)))
    opener.start()
    opener.join(1.0)
    assert opener.is_alive()  # waits for the writer, instead of repairing its rows away
    release.set()
    writer.join(60)
    opener.join(60)
    [second] = opened
    assert [f.source for f in second.files()] == ["rates.md"]
    assert second.store.present(second.catalog.chunk_ids("rates.md")) == set(second.catalog.chunk_ids("rates.md"))
    _assert_consistent(second, encoder)
    second.close()
    first.close()
