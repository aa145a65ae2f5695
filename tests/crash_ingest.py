"""A child process for the crash tests: ingest a folder (or delete a file), optionally dying by SIGKILL at a named point.

python -m tests.crash_ingest WORKSPACE (index FOLDER | delete NAME) [--kill-at POINT]

POINT names the moment the process kills itself with SIGKILL, the same signal as `kill -9`:
- ``mid-upsert``: after half of a file's rows are written to the store;
- ``before-record``: the store holds the file's new rows, the catalog does not know yet;
- ``before-release``: the catalog records the new version, the old version's rows are still stored;
- ``mid-delete``: a deletion has begun on the store, the catalog still lists the file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def die() -> None:
    sys.stdout.flush()
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the Milvus Lite server child goes too, as with `kill -9 -PGID`


def arm(point: str) -> None:
    from core.index.milvus import MilvusVectorStore
    from core.ingest.catalog import Catalog

    if point == "mid-upsert":
        upsert = MilvusVectorStore.upsert

        def half_then_die(self, chunks, vectors):
            upsert(self, chunks[: len(chunks) // 2 or 1], vectors[: len(chunks) // 2 or 1])
            die()

        MilvusVectorStore.upsert = half_then_die
    elif point == "before-record":
        Catalog.record = lambda self, entry, ids: die()
    elif point == "before-release":
        record = Catalog.record

        def record_then_arm(self, entry, ids):
            released = record(self, entry, ids)
            MilvusVectorStore.delete = lambda store, chunk_ids: die()
            return released

        Catalog.record = record_then_arm
    elif point == "mid-delete":
        delete = MilvusVectorStore.delete

        def first_then_die(self, chunk_ids):
            delete(self, chunk_ids[:1])
            die()

        MilvusVectorStore.delete = first_then_die
    else:
        raise SystemExit(f"unknown point {point}")


def announce_first_write() -> None:
    """Print "writing" when the first upsert starts, so a parent can kill inside the write phase."""
    from core.index.milvus import MilvusVectorStore

    upsert = MilvusVectorStore.upsert

    def announced(self, chunks, vectors):
        MilvusVectorStore.upsert = upsert
        print("writing", flush=True)
        upsert(self, chunks, vectors)

    MilvusVectorStore.upsert = announced


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", type=Path)
    parser.add_argument("command", choices=["index", "delete"])
    parser.add_argument("target")
    parser.add_argument("--kill-at")
    parser.add_argument("--announce-writes", action="store_true", help='print "writing" at the first store write')
    args = parser.parse_args()
    from core.config import Settings
    from core.embedding.bi_encoder import BiEncoder
    from core.ingest.workspace import Workspace

    settings = Settings(workspace=args.workspace, embed_backend="torch", chunk_tokens=64, chunk_overlap=8)
    workspace = Workspace(settings, BiEncoder(backend="torch"))
    if args.kill_at:
        arm(args.kill_at)
    if args.announce_writes:
        announce_first_write()
    print("ready", flush=True)
    if args.command == "index":
        summary = workspace.ingest_paths([Path(args.target)])
        print(sum(r.status == "indexed" for r in summary.reports), "indexed", flush=True)
    else:
        print(workspace.delete(args.target), "deleted", flush=True)
    workspace.close()


if __name__ == "__main__":
    main()
