"""Ingesting a mixed upload: bad files get their own errors, good ones go in, the index is untouched."""

from __future__ import annotations

import io

import pytest

from core.ingest.workspace import FileInput, Workspace

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
    from core.index.milvus import MilvusVectorStore

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

    from core.index.store import VectorStoreError

    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("a.txt", GOOD_TEXT.encode())])
    ws.close()
    with pytest.raises(VectorStoreError, match="another workspace"):
        Workspace(settings.with_(collection="other"), encoder)


# --- hostile names: a name is data, never syntax -------------------------------------------------------

HOSTILE_NAMES = [
    "z') OR 1=1 --.txt",
    "o'brien.txt",
    'say "hi".txt',
    "back\\slash.txt",
    "chapter #2.txt",
    "  spaced  name .txt",
    "emoji 🦩😀.txt",
    "new\nline.txt",
    "<b>bold</b> ![i](http://127.0.0.1:9/x.png).md",
    "tab\tand\rreturn.txt",
    "名" * 400 + ".txt",  # 1,204 bytes in UTF-8
]


def _catalog_equals_store(ws) -> None:
    stored = {cid for batch in ws.store.iter_ids() for cid in batch}
    assert stored == ws.catalog.all_chunk_ids()
    assert ws.catalog.unowned() == []


def test_a_file_name_cannot_wipe_the_index(settings, encoder):
    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("heron.txt", b"The grey heron wades in shallow water to catch fish.")])
    hostile = "z') OR 1=1 --.txt"
    report = ws.ingest([FileInput(hostile, b"Milvus filter expressions must never carry file names.")]).reports[0]
    assert report.status == "indexed", report.error
    ws.close()

    ws = Workspace(settings, encoder)  # a restart
    assert ws.store.count() == 2
    assert ws.store.search(encoder.encode_query("heron catching fish"), 1)[0].chunk.source == "heron.txt"
    assert ws.delete(hostile) == 1
    assert ws.store.count() == 1 and [f.source for f in ws.files()] == ["heron.txt"]
    again = ws.ingest([FileInput("heron.txt", b"The grey heron wades in shallow water to catch fish.")]).reports[0]
    assert again.status == "unchanged"
    _catalog_equals_store(ws)
    ws.close()


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
def test_any_unicode_name_indexes_searches_lists_and_deletes(workspace, encoder, name):
    workspace.ingest([FileInput("bystander.txt", b"Bond duration measures interest rate sensitivity.")])
    text = "Flamingos filter-feed on brine shrimp in salt lakes."
    report = workspace.ingest([FileInput(name, text.encode())]).reports[0]
    assert report.status == "indexed", report.error
    assert name in {f.source for f in workspace.files()}
    top = workspace.store.search(encoder.encode_query("what do flamingos eat"), 1)[0].chunk
    assert (top.source, top.text) == (name, text)
    assert workspace.ingest([FileInput(name, text.encode())]).reports[0].status == "unchanged"
    assert workspace.delete(name) == 1
    assert [f.source for f in workspace.files()] == ["bystander.txt"] and workspace.store.count() == 1
    _catalog_equals_store(workspace)


def test_an_apostrophe_in_a_document_id_fails_no_row(workspace):
    rows = b'{"_id": "O\'Neil", "text": "Irish surnames."}\n{"_id": "plain", "text": "Plain text."}\n'
    report = workspace.ingest([FileInput("people.jsonl", rows)]).reports[0]
    assert report.status == "indexed" and report.documents == report.chunks == 2
    assert workspace.store.count() == 2


def test_chunk_ids_are_unique_by_construction(workspace):
    jsonl = b'{"_id": "x.txt", "text": "Same words in two files."}\n'
    reports = workspace.ingest(
        [FileInput("c.jsonl", jsonl), FileInput("c.jsonl#x.txt", b"Same words in two files.")]
    ).reports
    assert [r.status for r in reports] == ["indexed", "indexed"]
    assert workspace.store.count() == 2 == sum(f.chunks for f in workspace.files())
    assert "1 duplicate(s)" in reports[1].message and "0 from cache" in reports[1].message
    _catalog_equals_store(workspace)


@pytest.mark.parametrize(
    ("name", "cause"),
    [("nul\x00.txt", "NUL"), ("x" * 5000 + ".txt", "bytes long"), ("surrogate\udc80.txt", "not valid Unicode")],
)
def test_a_name_the_index_cannot_hold_is_refused_clearly(workspace, name, cause):
    reports = workspace.ingest([FileInput(name, b"some text"), FileInput("fine.txt", b"other text")]).reports
    assert reports[0].status == "error" and cause in reports[0].error
    assert reports[1].status == "indexed" and workspace.store.count() == 1


def test_unchanged_is_checked_against_the_rows_the_store_holds(workspace):
    text = "\n\n".join(f"Paragraph {i} on sovereign debt restructuring and collective action." * 6 for i in range(6))
    first = workspace.ingest([FileInput("debt.md", text.encode())]).reports[0]
    ids = workspace.catalog.chunk_ids("debt.md")
    workspace.store.delete(ids[:2])  # rows lost behind the catalog's back
    again = workspace.ingest([FileInput("debt.md", text.encode())]).reports[0]
    assert again.status == "indexed" and any("2 of its" in w and "restored" in w for w in again.warnings)
    assert again.embedded == 0  # the vectors come from the cache
    assert workspace.store.present(ids) == set(ids) and again.chunks == first.chunks
    _catalog_equals_store(workspace)


def test_text_output_quotes_names():
    from core.ingest.workspace import FileReport

    assert FileReport("a\nb.txt", "error", error="bad").message == '"a\\nb.txt": bad'


def test_a_new_version_writes_only_the_chunks_that_changed(workspace):
    paragraphs = [f"Paragraph {i} on the term structure of interest rates and its shape." * 6 for i in range(5)]
    workspace.ingest([FileInput("curve.md", "\n\n".join(paragraphs).encode())])
    before = set(workspace.catalog.chunk_ids("curve.md"))
    written: list[str] = []
    upsert = workspace.store.upsert

    def recording_upsert(chunks, vectors):  # the real store, with the ids it is asked to write noted
        written.extend(c.chunk_id for c in chunks)
        upsert(chunks, vectors)

    workspace.store.upsert = recording_upsert
    paragraphs[-1] = "A new closing paragraph about inverted yield curves." * 6
    workspace.ingest([FileInput("curve.md", "\n\n".join(paragraphs).encode())])
    after = set(workspace.catalog.chunk_ids("curve.md"))
    assert before & after and set(written) == after - before  # rows both versions share are left alone
    _catalog_equals_store(workspace)


def test_an_index_that_stops_answering_fails_the_files_not_the_upload(settings, encoder):
    ws = Workspace(settings, encoder)
    ws.ingest([FileInput("a.txt", GOOD_TEXT.encode())])
    ws.store._client.close()  # the real client, gone: every call now raises
    reports = ws.ingest([FileInput("a.txt", GOOD_TEXT.encode()), FileInput("b.txt", b"Another text.")]).reports
    assert [r.status for r in reports] == ["error", "error"]
    assert "could not be read" in reports[0].error and "could not be written" in reports[1].error
