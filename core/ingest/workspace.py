"""A workspace folder: the vector index, the catalog of indexed files and the embedding cache.

Ingestion runs in three steps so that one bad file never affects the others: parse and chunk every
file (a file that fails gets its own error), embed all new chunks in one pass (cached ones are not
re-embedded), then write each file's chunks to the index and the catalog.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.chunks import Chunk
from core.config import Settings
from core.embedding.bi_encoder import BiEncoder, Progress
from core.embedding.cache import EmbeddingCache, embed_with_cache
from core.index.bm25 import LexicalSearch
from core.index.milvus import MilvusVectorStore
from core.index.store import VectorStore, VectorStoreError
from core.ingest.catalog import Catalog, IndexedFile, utc_now
from core.ingest.chunking import Chunker
from core.ingest.names import name_problem, quoted
from core.ingest.parsing import IngestError, parse_file
from core.ingest.repair import finish_pending_drop, has_unhashed_ids, rebuild_with_hashed_ids, repair
from core.locking import FolderLock


@dataclass(frozen=True)
class FileInput:
    name: str
    data: bytes
    csv_text_column: str | None = None


@dataclass
class FileReport:
    source: str
    status: str  # "indexed", "unchanged" or "error"
    documents: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks run through the bi-encoder
    duplicates: int = 0  # chunks whose text came earlier in the same upload; the rest came from the cache
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def message(self) -> str:
        """One line about the file; its name is quoted, so a name with a newline or quotes stays one item."""
        name = quoted(self.source)
        if self.status == "error":
            return f"{name}: {self.error}"
        if self.status == "unchanged":
            return f"{name}: unchanged since it was indexed; nothing embedded"
        cached = self.chunks - self.embedded - self.duplicates
        return (
            f"{name}: {self.documents} document(s), {self.chunks} chunk(s), {self.embedded} embedded, "
            f"{cached} from cache"
            + (f", {self.duplicates} duplicate(s) of earlier chunks" if self.duplicates else "")
            + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")
        )


@dataclass
class IngestSummary:
    reports: list[FileReport]
    seconds: float  # end to end: parsing, chunking, embedding and writing
    embedded: int  # chunks the bi-encoder ran on (the rest came from the cache)
    embed_seconds: float = 0.0

    @property
    def embedded_per_second(self) -> float:
        """The bi-encoder's throughput on this ingest; cached chunks are not counted as work."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


class Workspace:
    """Shared by every browser session of the app: writes to the index and catalog take a lock."""

    def __init__(self, settings: Settings, encoder: BiEncoder, store: VectorStore | None = None):
        self.settings = settings
        self.encoder = encoder
        self.folder = Path(settings.workspace)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.folder / "catalog.sqlite")
        self.cache = EmbeddingCache(self.folder / "embeddings.sqlite")
        self._lock = FolderLock.for_folder(self.folder)
        self.store: VectorStore | None = None
        try:
            with self._lock:
                self._check_model()
                self._check_index()
                self.store = store or self._open_store()
                # A write cut short (a crash, kill -9) leaves its ids in the catalog's journal: delete them.
                repair(self.catalog, self.store)
        except Exception as exc:
            self.close()
            if isinstance(exc, VectorStoreError):
                raise
            raise VectorStoreError(
                f"the index of {self.folder} could not be opened ({type(exc).__name__}: {exc})"
            ) from exc
        self.lexical = LexicalSearch(self.store)
        self.chunker = Chunker(encoder.tokenizer, settings.chunk_tokens, settings.chunk_overlap)

    def _open_store(self) -> MilvusVectorStore:
        # After a rebuild the rows live in a collection of another name; the catalog records which.
        store = MilvusVectorStore(
            self.settings.resolved_milvus_uri,
            dim=self.encoder.dim,
            collection=self.catalog.get_meta("collection") or self.settings.collection,
            index_type=self.settings.index_type,
            token=self.settings.milvus_token,
        )
        finish_pending_drop(self.catalog, store)
        if has_unhashed_ids(self.catalog):  # an index made before chunk ids were hashed
            store = rebuild_with_hashed_ids(self.catalog, store, self.settings.collection)
        return store

    def _check_index(self) -> None:
        """The catalog describes one index: opening it against another URI or collection would lie."""
        index = f"{self.settings.resolved_milvus_uri}|{self.settings.collection}"
        recorded = self.catalog.get_meta("index")
        if recorded is not None and recorded != index and self.catalog.files():
            raise VectorStoreError(
                f"the catalog in {self.folder} describes the index {recorded.replace('|', ', collection ')}, "
                f"not {index.replace('|', ', collection ')}; use another workspace (RERANK_WORKSPACE) for that index"
            )
        if recorded != index:  # a new index: what a rebuild recorded about the old one no longer applies
            for key in ("collection", "rebuilds", "drop_pending"):
                self.catalog.set_meta(key, "")
        self.catalog.set_meta("index", index)

    def _check_model(self) -> None:
        built_with = self.catalog.get_meta("bi_encoder")
        if built_with is None:
            self.catalog.set_meta("bi_encoder", self.encoder.model_id)
        elif built_with != self.encoder.model_id and self.catalog.files():
            raise VectorStoreError(
                f"the index in {self.folder} was built with {built_with}, not {self.encoder.model_id}; "
                "use that bi-encoder or another workspace (RERANK_WORKSPACE)"
            )
        else:
            self.catalog.set_meta("bi_encoder", self.encoder.model_id)

    def chunker_for(self, chunk_tokens: int | None = None, chunk_overlap: int | None = None) -> Chunker:
        tokens = chunk_tokens or self.chunker.max_tokens
        overlap = self.chunker.overlap if chunk_overlap is None else chunk_overlap
        if (tokens, overlap) == (self.chunker.max_tokens, self.chunker.overlap):
            return self.chunker
        return Chunker(self.encoder.tokenizer, tokens, overlap)

    def _chunking_key(self, chunker: Chunker) -> str:
        return f"{self.encoder.cache_key}|{chunker.max_tokens}|{chunker.overlap}"

    def files(self) -> list[IndexedFile]:
        return self.catalog.files()

    def ingest_paths(self, paths: list[Path], progress: Progress | None = None, **options) -> IngestSummary:
        """Ingest files and folders from disk.

        A file is named by its file name and a file inside a folder by its path relative to that
        folder, as an upload of the same file would be; so `data/demo` yields `finance/bonds.md`.
        """
        inputs, unreadable = [], []
        for path in map(Path, paths):
            named = (
                [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()]
                if path.is_dir()
                else [(path, path.name)]
            )
            for file, name in named:
                try:
                    inputs.append(FileInput(name, file.read_bytes(), options.get("csv_text_column")))
                except OSError as exc:
                    unreadable.append(FileReport(name, "error", error=f"cannot read: {exc.strerror or exc}"))
        summary = self.ingest(
            inputs, progress, chunk_tokens=options.get("chunk_tokens"), chunk_overlap=options.get("chunk_overlap")
        )
        summary.reports = unreadable + summary.reports
        return summary

    def ingest(
        self,
        inputs: list[FileInput],
        progress: Progress | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
    ) -> IngestSummary:
        """Index ``inputs``; chunk size and overlap default to the workspace settings.

        Parsing, chunking and embedding run unlocked, so other sessions keep searching and opening the
        index; the folder's write lock is held for the repair and for each file's write only.
        """
        return self._ingest(inputs, progress, self.chunker_for(chunk_tokens, chunk_overlap))

    def _ingest(self, inputs: list[FileInput], progress: Progress | None, chunker: Chunker) -> IngestSummary:
        started = time.perf_counter()
        chunking = self._chunking_key(chunker)
        reports = [FileReport(item.name, "indexed") for item in inputs]
        try:
            with self._lock:
                repair(self.catalog, self.store)
        except Exception as exc:  # the store is down or refusing writes: nothing can go in
            for report in reports:
                report.status, report.error = "error", f"the index cannot be written now ({exc})"
            return IngestSummary(reports, time.perf_counter() - started, 0)
        names = Counter(item.name for item in inputs)
        pending = []
        for item, report in zip(inputs, reports):
            prepared = self._prepare(item, report, chunker, chunking, names[item.name] > 1)
            if prepared is not None:
                pending.append(prepared)
        all_chunks = [chunk for _, chunks, _, _ in pending for chunk in chunks]
        embed_started = time.perf_counter()
        try:
            vectors, fresh = embed_with_cache(self.encoder, self.cache, [c.text for c in all_chunks], progress)
        except Exception as exc:  # e.g. out of memory on the GPU: every pending file says so, none is half-written
            for report, *_ in pending:
                report.status, report.error = "error", f"could not be embedded ({type(exc).__name__}: {exc})"
            return IngestSummary(reports, time.perf_counter() - started, 0)
        embed_seconds = time.perf_counter() - embed_started
        self._write_all(pending, vectors, fresh, _repeats(all_chunks), chunking)
        self._wait_until_indexed([report for report, *_ in pending if report.status == "indexed"])
        return IngestSummary(reports, time.perf_counter() - started, int(fresh.sum()), embed_seconds)

    def _prepare(self, item: FileInput, report: FileReport, chunker: Chunker, chunking: str, repeated: bool):
        """(report, chunks, content hash, size) for a file to write, or None: refused, failed or unchanged."""
        problem = name_problem(item.name, self.store.max_name_bytes)
        if problem is None and repeated:
            problem = "another file in this upload has the same name; rename one"
        if problem:
            report.status, report.error = "error", problem
            return None
        csv_column = item.csv_text_column if item.name.lower().endswith(".csv") else None
        content_hash = hashlib.sha256(item.data + f"\x00{chunking}\x00{csv_column}".encode()).hexdigest()
        previous = self.catalog.get(item.name)
        if previous and previous.content_hash == content_hash:
            try:
                missing = self._missing_rows(item.name)
            except Exception as exc:  # the store could not say: this file's problem, not the upload's
                report.status, report.error = "error", f"the index could not be read ({type(exc).__name__}: {exc})"
                return None
            if not missing:
                report.status, report.documents, report.chunks = "unchanged", previous.documents, previous.chunks
                return None
            report.warnings.append(f"{missing} of its {previous.chunks} chunk(s) were missing from the index; restored")
        try:
            parsed = parse_file(
                item.name, item.data, max_bytes=self.settings.max_file_bytes, csv_text_column=csv_column
            )
            chunks = chunker.chunk_file(parsed)
        except IngestError as exc:
            report.status, report.error = "error", exc.cause
            return None
        except Exception as exc:  # a parser library's own bug must cost only this file
            report.status, report.error = "error", f"could not be parsed ({type(exc).__name__}: {exc})"
            return None
        report.documents, report.chunks = len(parsed.documents), len(chunks)
        report.warnings += parsed.warnings
        return report, chunks, content_hash, len(item.data)

    def _write_all(self, pending, vectors: np.ndarray, fresh: np.ndarray, repeats: np.ndarray, chunking: str) -> None:
        """Each file's rows and catalog entry under the write lock, one file at a time."""
        offset = 0
        for report, chunks, content_hash, size in pending:
            span = slice(offset, offset + len(chunks))
            report.embedded, report.duplicates = int(fresh[span].sum()), int(repeats[span].sum())
            offset += len(chunks)
            try:
                with self._lock:
                    self._replace(report, chunks, vectors[span], content_hash, size, chunking)
            except Exception as exc:
                report.status, report.error = (
                    "error",
                    f"could not be written to the index ({type(exc).__name__}: {exc})",
                )

    def _wait_until_indexed(self, written: list[FileReport]) -> None:
        """A server builds its index after the writes; searching before that scans a temporary one."""
        if not written:
            return
        try:
            self.store.wait_until_indexed()
        except Exception as exc:  # the data is written: a slow or rate-limited index build is a warning
            for report in written:
                report.warnings.append(f"searchable, but its index may still be building: {exc}")

    def _missing_rows(self, source: str) -> int:
        """How many of a file's chunks the store does not hold (the catalog alone is not proof)."""
        ids = self.catalog.chunk_ids(source)
        return len(ids) - len(self.store.present(ids))

    def _replace(
        self, report: FileReport, chunks: list[Chunk], vectors: np.ndarray, content_hash: str, size: int, chunking: str
    ) -> None:
        """Write a file's chunks, then make the catalog say so; the old version's rows go last.

        Ids hash the chunk's text, so new rows never overwrite old ones: until the catalog records the
        new version, the old one is whole. The journal (``Catalog.mark_unowned``) lists the new ids
        first, so a crash before the catalog write is rolled back by ``repair`` on the next open.
        """
        new_ids = [c.chunk_id for c in chunks]
        old_ids = set(self.catalog.chunk_ids(report.source))
        added = sorted(set(new_ids) - old_ids)
        # Rows the old version already holds are identical (ids hash the text) and stay untouched: an
        # upsert may delete before it inserts, and those ids are not in the journal. Missing ones are
        # written again (a file called unchanged whose rows the store lost).
        present = self.store.present(sorted(old_ids & set(new_ids)))
        writes = [i for i, cid in enumerate(new_ids) if cid not in present]
        self.catalog.mark_unowned(added)
        try:
            if writes:
                self.store.upsert([chunks[i] for i in writes], vectors[writes])
        except Exception:
            # Batches written before the failure would be orphans the catalog cannot list or delete.
            try:
                self.store.delete(added)
                self.catalog.clear_unowned(added)
            except Exception:  # noqa: BLE001 (the store is down: the journal keeps them for repair)
                pass
            raise
        entry = IndexedFile(
            source=report.source,
            content_hash=content_hash,
            size_bytes=size,
            documents=report.documents,
            chunks=len(chunks),
            indexed_at=utc_now(),
            chunking=chunking,
        )
        released = self.catalog.record(entry, new_ids)
        if released:
            try:
                self.store.delete(released)
            except Exception as exc:  # noqa: BLE001 (the new version is in; the journal retries the rest)
                report.warnings.append(f"the old version's chunks will be removed on the next write ({exc})")
            else:
                self.catalog.clear_unowned(released)

    def delete(self, source: str) -> int:
        """Remove a file's chunks from the index; returns how many chunks went.

        The file's ids go into the journal first; ``repair`` then deletes them from the store and forgets
        the file. If the store fails midway, the next open or write finishes the deletion.
        """
        with self._lock:
            ids = self.catalog.chunk_ids(source)
            self.catalog.mark_unowned(ids)
            repair(self.catalog, self.store)
            return len(ids)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.catalog.close()
        self.cache.close()


def _repeats(chunks: list[Chunk]) -> np.ndarray:
    """Which chunks repeat a text that came earlier in the same upload (reported as duplicates)."""
    seen: set[str] = set()
    repeats = np.zeros(len(chunks), dtype=bool)
    for i, chunk in enumerate(chunks):
        repeats[i] = chunk.text in seen
        seen.add(chunk.text)
    return repeats
