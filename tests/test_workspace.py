"""Ingesting a mixed upload: bad files get their own errors, good ones go in, the index is untouched."""

from __future__ import annotations

import io

from core.workspace import FileInput, Workspace

GOOD_TEXT = "Force majeure clauses excuse performance when events beyond a party's control occur.\n"


def _docx_bytes(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


BAD_FILES = {
    "empty.txt": b"",
    "junk.pdf": b"\x00\x01not a pdf at all\xff" * 20,
    "broken.docx": b"PK\x03\x04 this is not a real zip archive",
    "latin1.txt": "Caf\u00e9 cr\u00e8me".encode("latin-1"),
    "no-rows.csv": b"id,text\n",
    "too-big.md": b"x" * (2 * 1024 * 1024),
}


def test_each_bad_file_gets_its_own_error_and_the_rest_is_indexed(tmp_path, encoder):
    from core.config import Settings

    ws = Workspace(Settings(workspace=tmp_path / "ws", max_file_mb=1), encoder)
    ws.ingest([FileInput("already.md", b"# Earlier\n\nAn earlier document about bond duration.")])
    before = {f.source: f for f in ws.files()}
    count_before = ws.store.count()

    jsonl = b'{"_id": "d1", "title": "Duration", "text": "Bond duration."}\n{"_id": "d2", "text": broken}\n{"_id": "d3", "text": "Convexity."}\n'
    inputs = [FileInput(name, data) for name, data in BAD_FILES.items()] + [
        FileInput("good.txt", GOOD_TEXT.encode()),
        FileInput("good.docx", _docx_bytes("Indemnification shifts losses between the parties.")),
        FileInput("corpus.jsonl", jsonl),
    ]
    reports = {r.source: r for r in ws.ingest(inputs).reports}

    for name in BAD_FILES:
        assert reports[name].status == "error", name
        assert reports[name].error and name in reports[name].message
    assert "empty" in reports["empty.txt"].error
    assert "PDF" in reports["junk.pdf"].error
    assert ".docx" in reports["broken.docx"].error
    assert "UTF-8" in reports["latin1.txt"].error
    assert "no rows" in reports["no-rows.csv"].error
    assert "limit" in reports["too-big.md"].error

    assert reports["good.txt"].status == reports["good.docx"].status == "indexed"
    assert reports["corpus.jsonl"].status == "indexed" and reports["corpus.jsonl"].documents == 2
    assert any("line 2" in w for w in reports["corpus.jsonl"].warnings)

    files = {f.source: f for f in ws.files()}
    assert set(files) == {"already.md", "good.txt", "good.docx", "corpus.jsonl"}
    assert files["already.md"] == before["already.md"]
    assert ws.store.count() == count_before + sum(reports[n].chunks for n in ("good.txt", "good.docx", "corpus.jsonl"))
    ws.close()


def test_index_persists_across_restarts_and_delete_removes_a_file(settings, encoder):
    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("a.txt", GOOD_TEXT.encode()), FileInput("b.txt", b"Git rebase rewrites commit history.")])
    ws.close()

    ws = Workspace(settings, encoder)
    assert {f.source for f in ws.files()} == {"a.txt", "b.txt"}
    hits = ws.store.search(encoder.encode_query("rewriting git history"), 5)
    assert hits[0].chunk.source == "b.txt"
    removed = ws.delete("b.txt")
    assert removed == 1
    assert {f.source for f in ws.files()} == {"a.txt"}
    assert all(h.chunk.source != "b.txt" for h in ws.store.search(encoder.encode_query("git"), 5))
    ws.close()


def test_changed_file_replaces_its_old_chunks(workspace):
    long_text = "\n\n".join(f"Paragraph {i} about interest rate swaps and hedging." * 8 for i in range(12))
    workspace.ingest([FileInput("swaps.md", long_text.encode())])
    many = workspace.catalog.get("swaps.md").chunks
    assert many > 2
    workspace.ingest([FileInput("swaps.md", b"Now a single short paragraph.")])
    assert workspace.catalog.get("swaps.md").chunks == 1
    assert workspace.store.count() == 1


def test_folder_ingest_names_files_relative_to_the_folder(workspace, tmp_path):
    folder = tmp_path / "corpus"
    (folder / "legal").mkdir(parents=True)
    (folder / "legal" / "gdpr.md").write_text("# GDPR\n\nData subject access requests must be answered within a month.")
    (folder / "notes.txt").write_text("Plain notes.")
    summary = workspace.ingest_paths([folder])
    assert sorted(r.source for r in summary.reports) == ["legal/gdpr.md", "notes.txt"]


class FailingStore:
    """A real Milvus store whose second upsert batch fails, as a server that drops mid-write would."""

    def __init__(self, store):
        self.store, self.dim = store, store.dim

    def upsert(self, chunks, vectors):
        half = len(chunks) // 2
        self.store.upsert(chunks[:half], vectors[:half])
        raise ConnectionError("server went away")

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_failed_write_leaves_no_orphans_and_keeps_other_files(settings, encoder):
    from core.vector_store import MilvusVectorStore

    real = MilvusVectorStore(str(settings.workspace / "milvus.db"), encoder.dim)
    ws = Workspace(settings, encoder, store=FailingStore(real))
    long_text = "\n\n".join(f"Section {i} on liquidity coverage ratios and stress tests." * 10 for i in range(8))
    report = ws.ingest([FileInput("basel.md", long_text.encode())]).reports[0]
    assert report.status == "error" and "server went away" in report.error
    assert real.count() == 0 and ws.files() == []
    ws.close()


def test_duplicate_names_in_one_upload_are_rejected(workspace):
    reports = workspace.ingest(
        [FileInput("same.txt", b"first version"), FileInput("same.txt", b"second version")]
    ).reports
    assert [r.status for r in reports] == ["error", "error"]
    assert all("same name" in r.error for r in reports)
    assert workspace.files() == []


def test_catalog_refuses_another_index(settings, encoder):
    import pytest

    from core.vector_store import VectorStoreError

    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("a.txt", GOOD_TEXT.encode())])
    ws.close()
    with pytest.raises(VectorStoreError, match="another workspace"):
        Workspace(settings.with_(collection="other"), encoder)
