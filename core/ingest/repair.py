"""Bringing the vector store back in line with the catalog: after an interrupted write, and once for old ids.

The catalog is the record of what is indexed. Every write that touches the store first journals the ids
it may leave there unowned (``Catalog.mark_unowned``); ``repair`` deletes whatever the journal still
lists, and finishes a file deletion that was cut short. Chunk ids made before they were hashed carry file
names; ``rebuild_with_hashed_ids`` copies such an index into a fresh collection under hashed ids, since
those old ids cannot be put into a delete filter safely.
"""

from __future__ import annotations

import re
from dataclasses import replace

from core.chunks import make_chunk_id
from core.index.milvus import MilvusVectorStore
from core.index.store import VectorStore
from core.ingest.catalog import Catalog

HASHED_ID = re.compile(r"[0-9a-f]{32}")


def repair(catalog: Catalog, store: VectorStore) -> int:
    """Delete the journal's unowned ids from the store; returns how many there were.

    An unowned id that a file still owns is a deletion that was interrupted after it started deleting
    rows: the file is forgotten, as its deletion had been asked for.
    """
    ids = catalog.unowned()
    if not ids:
        return 0
    interrupted_deletes = catalog.owners(ids)
    store.delete(ids)
    for source in sorted(interrupted_deletes):
        catalog.forget(source)
    catalog.clear_unowned(ids)
    return len(ids)


def has_unhashed_ids(catalog: Catalog) -> bool:
    return any(not HASHED_ID.fullmatch(cid) for cid in catalog.all_chunk_ids())


def rebuild_with_hashed_ids(catalog: Catalog, old: MilvusVectorStore, logical_name: str) -> MilvusVectorStore:
    """Copy every owned row of ``old`` into a new collection under hashed ids, then drop ``old``.

    Crash-safe in three steps: the copy goes to a collection nobody reads yet (a half-made one from an
    earlier attempt is dropped first); one catalog transaction renames the ids and switches to it; only
    then is the old collection dropped (``finish_pending_drop`` completes that after a crash). A file
    whose rows did not all come across loses its content hash, so its next upload indexes it again; if
    some rows could not be read at all, the old collection is kept (``legacy_collection``), not dropped.
    """
    generation = int(catalog.get_meta("rebuilds") or 0) + 1
    new_name = f"{logical_name}_r{generation}"
    fresh = old.sibling(new_name)
    if fresh.count():
        fresh.drop()
        fresh = old.sibling(new_name)
    owned = catalog.all_chunk_ids()
    mapping: dict[str, str] = {}
    read = 0
    for chunks, vectors in old.scan_vectors():
        read += len(chunks)
        keep = [i for i, chunk in enumerate(chunks) if chunk.chunk_id in owned]
        renamed = [
            replace(chunks[i], chunk_id=make_chunk_id(chunks[i].source, chunks[i].doc_id, chunks[i].page,
                                                       chunks[i].start, chunks[i].text))
            for i in keep
        ]  # fmt: skip
        if renamed:
            fresh.upsert(renamed, vectors[keep])
        mapping.update((chunks[i].chunk_id, chunk.chunk_id) for i, chunk in zip(keep, renamed))
    incomplete = catalog.owners(sorted(owned - set(mapping)))
    unreadable = old.count() - read
    meta = {"collection": new_name, "rebuilds": str(generation)}
    meta |= {"legacy_collection": old.collection} if unreadable else {"drop_pending": old.collection}
    catalog.rekey(mapping, incomplete, meta)
    finish_pending_drop(catalog, fresh)
    return fresh


def finish_pending_drop(catalog: Catalog, store: MilvusVectorStore) -> None:
    """Drop the collection a rebuild replaced, if it is still there."""
    pending = catalog.get_meta("drop_pending")
    if pending:
        store.drop_collection(pending)
        catalog.set_meta("drop_pending", "")
