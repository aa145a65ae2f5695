"""The standing bad-input test: 30 hostile or broken files in one upload beside good ones.

Each bad file gets its own error naming it, the good ones are searchable, what was indexed before is
returned exactly as before, and the catalog lists exactly the rows the store holds.
"""

from __future__ import annotations

import random

import numpy as np

from core.config import Settings
from core.ingest.workspace import FileInput, Workspace
from tests.ingest.test_parsing import _document_xml, _docx_with_document, _encrypted_pdf, make_docx, make_pdf, make_zip

EARLIER = {
    "earlier/bonds.md": "# Bond duration\n\nDuration measures how a bond's price moves with interest rates.",
    "earlier/gdpr.txt": "A data subject access request must be answered within one month under the GDPR.",
    "earlier/git.txt": "git rebase rewrites commits onto a new base; merge keeps both histories.",
}
QUERIES = ["interest rate sensitivity of bonds", "answering access requests", "rewriting git history", "herons"]


def _bad_files() -> dict[str, tuple[bytes, str | None]]:
    """name → (bytes, CSV text column) of files that must each fail alone, with a cause to look for."""
    rng = random.Random(3)
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(2000))
    return {
        "empty.txt": (b"", "empty"),
        "blank.md": (b"  \n\t\n ", "empty"),
        "junk.pdf": (bytes(rng.randrange(256) for _ in range(3000)), "PDF"),
        "truncated.pdf": (make_pdf([["Some text on a page."]])[:300], "PDF"),
        "scan.pdf": (make_pdf([[], []]), "no text"),
        "locked.pdf": (_encrypted_pdf("s3cret", "AES-256"), "password"),
        "not-a-zip.docx": (b"PK\x03\x04 this is not a zip archive", ".docx"),
        "bomb.docx": (_docx_with_document(_document_xml("x", 1, padding=80 * 2**20)), "expands to"),
        "parts.docx": (make_zip({f"p{i}.xml": "" for i in range(10_001)}), "parts"),
        "zip-only.docx": (make_zip({"hello.txt": "just a zip"}), ".docx"),
        "cut.docx": (make_docx(["some text"])[:400], ".docx"),
        "latin1.txt": ("Café crème brûlée".encode("latin-1"), "UTF-8"),
        "utf16.md": ("\ufeffHello in UTF-16".encode("utf-16"), "UTF-8"),
        "image-as-text.txt": (png, "UTF-8"),
        "no-rows.csv": (b"id,text\n", "no rows"),
        "no-header.csv": (b"\n\n", "empty"),
        "all-empty.csv": (b"id,text\n1,\n2,  \n", "no text"),
        "all-broken.jsonl": (b'{"_id": 1, "text": broken}\n{not json\n', "no text"),
        "deep.json": (("[" * 50_000 + "]" * 50_000).encode(), "nested too deeply"),
        "invalid.json": (b'{"_id": "a", "text": "unterminated}', "not valid JSON"),
        "scalar.json": (b"42", "no text"),
        "too-big.md": (b"word " * (2 * 2**20 // 5 + 10), "limit"),
        "invisible.html": (
            b"<html><head><title>t</title><script>var x = 1;</script></head><body></body></html>",
            "no text",
        ),
        "program.exe": (b"MZ\x90\x00" * 100, "unsupported"),
        "README": (b"no suffix at all", "unsupported"),
        "nul\x00name.txt": (b"fine text", "NUL"),
        "x" * 5000 + ".txt": (b"fine text", "bytes long"),
        "surrogate\udc80.txt": (b"fine text", "not valid Unicode"),
    }


GOOD = {
    "good.txt": b"Grey herons wade in shallow water to catch fish.",
    "good.docx": make_docx(["Herons nest in colonies called heronries."]),
    "good.pdf": make_pdf([["Heron chicks fledge after about fifty days."]]),
    "good.html": b"<html><body><h1>Herons</h1><p>Herons fly with their necks retracted.</p><script>x()</script></body></html>",
    "good.csv": b"id,text\nh1,The great blue heron is the largest North American heron.\nh2,\n",
    "o'brien <b>herons</b>.md": b"Herons appear in Irish folklore.",
    "good.jsonl": b'{"_id": "a", "text": "Night herons feed at dusk."}\n{broken\n'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"\n",
}


def _earlier_hits(ws: Workspace, encoder) -> dict[str, list[tuple]]:
    """Every stored chunk of the earlier files, per query, in rank order with exact scores."""
    hits = {}
    for query in QUERIES:
        found = ws.store.search(encoder.encode_query(query), ws.store.count())
        hits[query] = [(h.chunk, h.score) for h in found if h.chunk.source.startswith("earlier/")]
    return hits


def test_a_bad_input_corpus_fails_file_by_file_and_leaves_the_index_alone(tmp_path, encoder):
    settings = Settings(workspace=tmp_path / "ws", max_file_mb=1)
    ws = Workspace(settings, encoder)
    ws.ingest([FileInput(name, text.encode()) for name, text in EARLIER.items()])
    before = _earlier_hits(ws, encoder)
    files_before = {f.source: f for f in ws.files()}

    bad = _bad_files()
    inputs = [FileInput(name, data) for name, (data, _) in bad.items()]
    inputs += [FileInput("twice.txt", b"first copy"), FileInput("twice.txt", b"second copy")]
    inputs += [FileInput(name, data) for name, data in GOOD.items()]
    assert len(inputs) - len(GOOD) >= 30
    reports = ws.ingest(inputs).reports

    by_name: dict[str, list] = {}
    for report in reports:
        by_name.setdefault(report.source, []).append(report)
    for name, (_, cause) in bad.items():
        [report] = by_name[name]
        assert report.status == "error" and cause in report.error, (name, report.error)
    assert [r.status for r in by_name["twice.txt"]] == ["error", "error"]
    for name in GOOD:
        [report] = by_name[name]
        assert report.status == "indexed", (name, report.error)
    jsonl = by_name["good.jsonl"][0]
    assert jsonl.documents == 1 and len(jsonl.warnings) == 2 and "nested too deeply" in " ".join(jsonl.warnings)
    assert "line 3" in by_name["good.csv"][0].warnings[0]

    # The good files are searchable, the earlier ones untouched, catalog and store the same rows.
    top = ws.store.search(encoder.encode_query("where do herons nest"), 3)
    assert top[0].chunk.source == "good.docx"
    after = _earlier_hits(ws, encoder)
    for query in QUERIES:
        assert [c for c, _ in after[query]] == [c for c, _ in before[query]]
        np.testing.assert_array_equal([s for _, s in after[query]], [s for _, s in before[query]])
    assert all(ws.catalog.get(name) == entry for name, entry in files_before.items())
    stored = {cid for batch in ws.store.iter_ids() for cid in batch}
    assert stored == ws.catalog.all_chunk_ids() and ws.catalog.unowned() == []
    assert {f.source for f in ws.files()} == set(EARLIER) | set(GOOD)
    ws.close()
