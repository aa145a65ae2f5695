"""The chunker: chunks fit the bi-encoder's window counted in its own tokens, and map back to the source.

Uses the real all-MiniLM-L6-v2 tokenizer from the ``encoder`` fixture.
"""

from __future__ import annotations

import io
import itertools
import random
import re
from pathlib import Path

import pytest

from core.chunks import Chunk, make_chunk_id
from core.config import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS
from core.ingest.chunking import Chunker
from core.ingest.parsing import ParsedDocument, ParsedFile, Section, parse_file

# --- deterministic text ------------------------------------------------------------------------------

SUBJECTS = (
    "the engineer",
    "a small river",
    "our search index",
    "the old library",
    "every vector",
    "this protocol",
    "the quantum model",
    "a patient reader",
    "the mountain village",
    "their reranker",
    "a tired courier",
    "the municipal council",
    "one curious student",
    "the harbour pilot",
)
VERBS = (
    "describes",
    "ignores",
    "rebuilds",
    "measures",
    "compresses",
    "celebrates",
    "questions",
    "translates",
    "remembers",
    "illuminates",
    "misplaces",
    "negotiates with",
    "photographs",
    "outlasts",
)
OBJECTS = (
    "the hidden ledger",
    "seventeen brittle maps",
    "a forgotten algorithm",
    "the morning tide",
    "several noisy tokens",
    "an unusual harvest",
    "the municipal archive",
    "a careful benchmark",
    "two stubborn clocks",
    "the northern railway",
    "an encyclopaedia of weather",
    "the copper bridge",
)
TAILS = (
    "",
    "quite slowly",
    "before the storm arrived",
    "with remarkable patience",
    "although nobody asked",
    "in 1987",
    "under heavy load",
    "for the third time",
    "(according to the minutes)",
    "at 06:45 sharp",
    "near kilometre 42.5",
    "despite the well-known risks; nobody objected",
)


def sentence(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS).capitalize(), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)]
    if rng.random() < 0.3:
        parts += ["and", rng.choice(VERBS), rng.choice(OBJECTS)]
    return " ".join(p for p in parts if p) + rng.choice(".....!?")


def paragraph(rng: random.Random, low: int, high: int) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(low, high)))


def long_text(seed: int = 7, paragraphs: int = 14) -> str:
    """A few thousand words: paragraphs of very different lengths, some longer than a chunk."""
    rng = random.Random(seed)
    blocks = []
    for number in range(paragraphs):
        if number % 5 == 4:
            blocks.append(f"Section {number // 5 + 1}: Notes")  # a short heading-like line
        blocks.append(paragraph(rng, 2, 6) if number % 3 == 0 else paragraph(rng, 18, 40))
    return "\n\n".join(blocks)


def pdf_like_document() -> ParsedDocument:
    """Pages of text as a PDF parser returns them: hard line breaks, a blank-ish page header, long pages."""
    rng = random.Random(11)
    sections = []
    for page in range(1, 6):
        lines = [f"Annual Report 2023                                   page {page}"]
        body = " ".join(sentence(rng) for _ in range(rng.randint(10, 45)))
        words = body.split(" ")
        # Wrap at ~12 words per line, like extracted PDF text.
        lines += [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
        sections.append(Section("\n".join(lines) + "\n", page=page))
    return ParsedDocument(doc_id="report.pdf", title="report.pdf", sections=sections)


NON_ASCII_TEXT = "\n\n".join(
    [
        "Café crème, naïve façade, résumé, Ångström, Œuvre, Straße, São Paulo, Zürich, El Niño. " * 6,
        "東京は日本の首都です。人工知能の研究は急速に進んでいます。検索と再ランキングを組み合わせます。" * 5,
        "Emoji: 🎉🚀 launch! 👩‍💻 coder, 🇯🇵 flag, 👍🏽 thumbs, family 👨‍👩‍👧‍👦. Math: ∑ x² ≤ ∞, π ≈ 3.14159. " * 5,
        "Combining: e\u0301 a\u0300 n\u0303 — Кириллица и ελληνικά γράμματα, עברית, العربية، हिन्दी पाठ। " * 5,
        "Zero\u200bwidth\u200bspaces and tabs\tand NBSP\u00a0here, then 한국어 문장과 中文句子混合在一起。" * 5,
    ]
)


# --- helpers -------------------------------------------------------------------------------------------


def chunk_sections(chunker: Chunker, document: ParsedDocument, source: str = "doc.txt") -> list[Chunk]:
    return chunker.chunk_file(ParsedFile(source, [document]))


def assert_chunk_invariants(chunker: Chunker, encoder, document: ParsedDocument, chunks: list[Chunk], source: str):
    hf_tokenizer = encoder.model.tokenizer
    assert chunks, "no chunks produced"
    by_page = {section.page: section for section in document.sections}
    assert len(by_page) == len(document.sections)

    for chunk in chunks:
        # Size: counted with special tokens, by the chunker and independently by the model's tokenizer.
        assert chunk.text.strip(), "empty chunk"
        assert chunker.count_tokens(chunk.text) <= chunker.max_tokens
        assert len(hf_tokenizer(chunk.text)["input_ids"]) <= chunker.max_tokens
        # Provenance.
        assert chunk.source == source
        assert chunk.doc_id == document.doc_id
        assert chunk.title == document.title
        section = by_page[chunk.page]
        assert 0 <= chunk.start < chunk.end <= len(section.text)
        assert section.text[chunk.start : chunk.end] == chunk.text

    for section in document.sections:
        own = [c for c in chunks if c.page == section.page]
        assert own, f"section on page {section.page} produced no chunk"
        starts = [c.start for c in own]
        assert starts == sorted(starts), "chunks out of order"
        assert [c.end for c in own] == sorted(c.end for c in own)
        covered = [False] * len(section.text)
        for c in own:
            covered[c.start : c.end] = [True] * (c.end - c.start)
        missing = [i for i, ch in enumerate(section.text) if not ch.isspace() and not covered[i]]
        assert not missing, f"characters not in any chunk, e.g. {section.text[missing[0] : missing[0] + 40]!r}"

    # Sections are emitted in document order.
    pages = [c.page for c in chunks]
    order = [s.page for s in document.sections]
    assert sorted(pages, key=order.index) == pages

    ids = [c.chunk_id for c in chunks]
    assert len(set(ids)) == len(ids), "chunk ids collide"


def overlapping_pairs(chunks: list[Chunk]) -> tuple[int, int]:
    pairs = [(a, b) for a, b in itertools.pairwise(chunks) if a.page == b.page]
    return sum(b.start < a.end for a, b in pairs), len(pairs)


# --- invariants ----------------------------------------------------------------------------------------

SETTINGS = [(256, 32), (128, 32), (64, 16), (128, 0), (48, 0)]


@pytest.fixture(scope="module")
def text_document() -> ParsedDocument:
    text = long_text()
    assert 2500 <= len(text.split()) <= 6000
    return ParsedDocument(doc_id="essay.txt", title="essay.txt", sections=[Section(text)])


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
def test_long_text_invariants(encoder, text_document, max_tokens, overlap):
    chunker = Chunker(encoder.tokenizer, max_tokens, overlap)
    chunks = chunk_sections(chunker, text_document, source="essay.txt")
    assert_chunk_invariants(chunker, encoder, text_document, chunks, "essay.txt")
    assert all(c.page is None for c in chunks)
    total = chunker.count_tokens(text_document.sections[0].text)
    assert len(chunks) >= total / max_tokens  # nothing was silently dropped or merged past the limit
    # The splitter fills chunks rather than cutting tiny ones: the largest one is near the limit.
    assert max(chunker.count_tokens(c.text) for c in chunks) >= max_tokens * 0.85

    overlapped, pairs = overlapping_pairs(chunks)
    if overlap == 0:
        assert overlapped == 0
        assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))
    else:
        assert overlapped > pairs / 2, f"only {overlapped} of {pairs} consecutive chunks overlap"


@pytest.mark.parametrize(("max_tokens", "overlap"), [(128, 32), (64, 16), (96, 0)])
def test_pdf_like_document_invariants(encoder, max_tokens, overlap):
    document = pdf_like_document()
    chunker = Chunker(encoder.tokenizer, max_tokens, overlap)
    chunks = chunk_sections(chunker, document, source="report.pdf")
    assert_chunk_invariants(chunker, encoder, document, chunks, "report.pdf")
    assert {c.page for c in chunks} == {1, 2, 3, 4, 5}
    # A chunk never spans two pages, and its id is made from its page.
    for c in chunks:
        assert c.chunk_id == make_chunk_id("report.pdf", "report.pdf", c.page, c.start, c.text)
    overlapped, pairs = overlapping_pairs(chunks)
    if overlap:
        assert overlapped > pairs / 2
    else:
        assert overlapped == 0


def test_real_pdf_chunks_carry_page_numbers(encoder):
    """A PDF parsed for real (reportlab + pypdf) chunks with the right page on each chunk."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    rng = random.Random(3)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for page in range(3):
        y = 800
        for _ in range(30):
            pdf.drawString(40, y, f"P{page + 1} " + sentence(rng))
            y -= 20
        pdf.showPage()
    pdf.save()
    parsed = parse_file("scan.pdf", buffer.getvalue())
    chunker = Chunker(encoder.tokenizer, 64, 16)
    chunks = chunker.chunk_file(parsed)
    assert_chunk_invariants(chunker, encoder, parsed.documents[0], chunks, "scan.pdf")
    for c in chunks:
        markers = {token[1] for token in c.text.split() if token[:1] == "P" and token[1:].isdigit()}
        assert markers <= {str(c.page)}


def test_chunk_ids_unique_and_stable_across_runs(encoder, text_document):
    pdf = pdf_like_document()
    parsed = ParsedFile(
        "bundle.jsonl",
        [
            ParsedDocument("d1", "One", [Section(text_document.sections[0].text[:4000])]),
            ParsedDocument("d2", "Two", [Section(text_document.sections[0].text[4000:9000])]),
        ],
    )
    first = Chunker(encoder.tokenizer, 64, 16)
    second = Chunker(encoder.tokenizer, 64, 16)
    run1 = first.chunk_file(parsed) + first.chunk_file(ParsedFile("report.pdf", [pdf]))
    run2 = second.chunk_file(parsed) + second.chunk_file(ParsedFile("report.pdf", [pdf]))
    assert [c.to_dict() for c in run1] == [c.to_dict() for c in run2]
    ids = [c.chunk_id for c in run1]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # no name in an id: nothing a filter could parse
    first = run1[0]
    assert first.chunk_id == make_chunk_id("bundle.jsonl", "d1", None, first.start, first.text)
    # Every field counts and the fields stay apart: no two of these name the same chunk.
    variants = [
        ("c.jsonl", "x.txt", None, 0, "t"), ("c.jsonl#x.txt", "c.jsonl#x.txt", None, 0, "t"),
        ("c.jsonl", "x.txt", 1, 0, "t"), ("c.jsonl", "x.txt", None, 1, "t"), ("c.jsonl", "x.txt", None, 0, "u"),
        ("c.jsonl#x", ".txt", None, 0, "t"), ('c.jsonl", "x', ".txt", None, 0, "t"),
    ]  # fmt: skip
    assert len({make_chunk_id(*v) for v in variants}) == len(variants)


def test_to_dict_round_trips(encoder):
    chunker = Chunker(encoder.tokenizer, 32, 0)
    [chunk] = chunk_sections(chunker, ParsedDocument("n.txt", "n.txt", [Section("  A short note.  ")]), "n.txt")
    assert chunk.text == "A short note."
    assert (chunk.start, chunk.end) == (2, 15)
    assert Chunk(**chunk.to_dict()) == chunk


# --- the model's window --------------------------------------------------------------------------------


def word_stream(seed: int, words: int) -> str:
    """Running text without sentence or paragraph breaks: the splitter fills every chunk to the token."""
    rng = random.Random(seed)
    vocabulary = " ".join(SUBJECTS + VERBS + OBJECTS).split()
    return " ".join(rng.choice(vocabulary) for _ in range(words))


@pytest.mark.parametrize("kind", ["paragraphs", "word-stream"])
def test_default_settings_fit_the_bi_encoder_window(encoder, text_document, kind):
    assert encoder.max_seq_length == 256
    assert DEFAULT_CHUNK_TOKENS <= encoder.max_seq_length
    text = text_document.sections[0].text if kind == "paragraphs" else word_stream(13, 3000)
    chunker = Chunker(encoder.tokenizer, DEFAULT_CHUNK_TOKENS, DEFAULT_CHUNK_OVERLAP)
    chunks = chunk_sections(chunker, ParsedDocument("doc.txt", "doc.txt", [Section(text)]))
    counts = [len(encoder.model.tokenizer(c.text)["input_ids"]) for c in chunks]
    assert max(counts) <= encoder.max_seq_length
    # Full chunks really do reach the window, so the bound above is tight and meaningful.
    assert max(counts) >= encoder.max_seq_length - 16
    if kind == "word-stream":
        assert max(counts) == encoder.max_seq_length
    # What the model actually feeds itself is the whole chunk: nothing is cut off.
    for chunk, count in zip(chunks, counts):
        features = encoder.model.tokenize([chunk.text])
        assert int(features["attention_mask"].sum()) == count


def test_chunker_with_padding_and_truncation_enabled_tokenizer(encoder):
    from tokenizers import Tokenizer

    from core.embedding.bi_encoder import resolve_bi_encoder_path

    # The model's own tokenizer.json enables both, at 128: that is what makes this test meaningful. (The
    # shared ``encoder.tokenizer`` is re-configured by every transformers call, so read the file itself.)
    tokenizer = Tokenizer.from_file(str(Path(resolve_bi_encoder_path(encoder.model_id)) / "tokenizer.json"))
    assert tokenizer.truncation is not None and tokenizer.truncation["max_length"] == 128
    assert tokenizer.padding is not None and tokenizer.padding["length"] == 128
    assert len(tokenizer.encode("hello world").ids) == 128  # padded: a naive count would be wrong

    rng = random.Random(5)
    text = " ".join(sentence(rng) for _ in range(120))
    assert len(encoder.model.tokenizer(text)["input_ids"]) > 1000

    chunker = Chunker(tokenizer, 256, 0)
    assert chunker.count_tokens("hello world") == 4  # [CLS] hello world [SEP], not padded to 128
    assert chunker.count_tokens(text) > 1000  # not truncated at 128
    chunks = chunker.chunk_document("t.txt", ParsedDocument("t.txt", "t.txt", [Section(text)]))
    counts = [chunker.count_tokens(c.text) for c in chunks]
    assert max(counts) > 128
    assert max(counts) <= 256
    assert counts == [len(encoder.model.tokenizer(c.text)["input_ids"]) for c in chunks]
    # The caller's tokenizer is left as it was.
    assert tokenizer.truncation["max_length"] == 128 and tokenizer.padding["length"] == 128

    # The same holds for the shared tokenizer, whatever transformers last configured on it.
    shared = Chunker(encoder.tokenizer, 256, 0)
    assert [shared.count_tokens(c.text) for c in chunks] == counts


# --- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (64, 64, "overlap"),
        (64, 100, "overlap"),
        (64, -1, "overlap"),
        (7, 0, "at least 8"),
        (0, 0, "at least 8"),
        (-5, 0, "at least 8"),
    ],
)
def test_invalid_settings_raise(encoder, max_tokens, overlap, message):
    with pytest.raises(ValueError, match=message):
        Chunker(encoder.tokenizer, max_tokens, overlap)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(8, 0), (8, 7), (16, 15)])
def test_smallest_valid_settings_still_respect_the_limit(encoder, max_tokens, overlap):
    chunker = Chunker(encoder.tokenizer, max_tokens, overlap)
    text = paragraph(random.Random(9), 6, 6)
    document = ParsedDocument("s.txt", "s.txt", [Section(text)])
    chunks = chunk_sections(chunker, document, "s.txt")
    assert_chunk_invariants(chunker, encoder, document, chunks, "s.txt")


# --- non-ASCII -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_tokens", "overlap"), [(24, 8), (64, 0), (128, 32)])
def test_non_ascii_offsets_map_back_exactly(encoder, max_tokens, overlap):
    document = ParsedDocument("intl.md", "intl.md", [Section(NON_ASCII_TEXT, page=None)])
    chunker = Chunker(encoder.tokenizer, max_tokens, overlap)
    chunks = chunk_sections(chunker, document, "intl.md")
    assert_chunk_invariants(chunker, encoder, document, chunks, "intl.md")
    # Offsets are in characters (str indices), not UTF-8 bytes: they must fit the str.
    assert max(c.end for c in chunks) <= len(NON_ASCII_TEXT) < len(NON_ASCII_TEXT.encode("utf-8"))
    joined = "".join(c.text for c in chunks)
    for marker in ("東京", "👩‍💻", "Ångström", "e\u0301", "ελληνικά", "한국어"):
        assert marker in joined


def test_whitespace_only_section_gives_no_chunks(encoder):
    chunker = Chunker(encoder.tokenizer, 32, 0)
    document = ParsedDocument("w.txt", "w.txt", [Section("   \n\n\t  "), Section("Real words here.", page=None)])
    chunks = chunker.chunk_document("w.txt", document)
    assert [c.text for c in chunks] == ["Real words here."]


def test_a_chunk_never_exceeds_what_the_index_stores(encoder):
    from core.chunks import MAX_CHUNK_BYTES
    from core.ingest.chunking import Chunker
    from core.ingest.parsing import ParsedDocument, Section

    # One "word" of 200,000 characters is a single [UNK] token: the token budget alone would not cut it.
    text = "intro words here " + "x" * 200_000 + " outro"
    chunker = Chunker(encoder.tokenizer, 256, 32)
    chunks = chunker.chunk_document("blob.txt", ParsedDocument("blob.txt", "", [Section(text)]))
    assert all(len(c.text.encode()) <= MAX_CHUNK_BYTES for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert "".join(c.text for c in chunks if "x" in c.text).count("x") == 200_000


def test_very_long_names_get_short_ids(encoder):
    from core.chunks import MAX_ID_BYTES
    from core.ingest.chunking import Chunker
    from core.ingest.parsing import ParsedDocument, Section

    name = "deep/" * 300 + "file.txt"
    chunks = Chunker(encoder.tokenizer, 256, 32).chunk_document(name, ParsedDocument(name, "", [Section("Some text.")]))
    assert len(chunks[0].chunk_id) == 32 <= MAX_ID_BYTES


# --- bounded work: the splitter never sees an unbounded stretch ---------------------------------------


def _cjk(characters: int) -> str:
    rng = random.Random(5)
    return "".join(chr(0x4E00 + rng.randrange(2000)) for _ in range(characters))


@pytest.mark.parametrize("kind", ["one long line", "no spaces (CJK)", "punctuation", "paragraphs", "emoji joiners"])
def test_blocks_cover_the_text_and_hold_a_bounded_number_of_tokens(encoder, text_document, kind):
    text = {
        "one long line": word_stream(3, 40_000),
        "no spaces (CJK)": _cjk(30_000),
        "punctuation": "a,b;c-d " * 8_000,
        "paragraphs": text_document.sections[0].text * 4,
        "emoji joiners": "👩\u200d👩\u200d👧\u200d👦e\u0301" * 6_000,
    }[kind]
    chunker = Chunker(encoder.tokenizer, 256, 32)
    blocks = list(chunker._blocks(text))
    assert blocks[0][0] == 0 and blocks[-1][1] == len(text)
    assert all(end == next_start for (_, end), (next_start, _) in itertools.pairwise(blocks))
    assert all(len(chunker.tokenizer.encode(text[a:b], add_special_tokens=False).ids) <= chunker._block_tokens
               for a, b in blocks)  # fmt: skip
    assert len(blocks) > 1
    if kind == "paragraphs":  # a block ends where a paragraph does
        assert all(text[b - 2 : b] == "\n\n" for _, b in blocks[:-1])
    if kind == "emoji joiners":  # a hard cut never splits a joined emoji or an accent from its letter
        assert all(text[b] not in "\u200d\u0301" and text[b - 1] != "\u200d" for _, b in blocks[:-1])


def test_chunks_of_pathological_text_keep_every_invariant(encoder):
    chunker = Chunker(encoder.tokenizer, 64, 16)
    for text in (_cjk(6_000), "a,b;c-d " * 1_500, word_stream(8, 5_000)):
        document = ParsedDocument("p.txt", "p.txt", [Section(text)])
        assert_chunk_invariants(chunker, encoder, document, chunk_sections(chunker, document, "p.txt"), "p.txt")


def test_blocks_cost_prose_at_most_one_short_chunk_per_block(encoder, text_document, monkeypatch):
    import core.ingest.chunking

    text = text_document.sections[0].text * 3
    chunker = Chunker(encoder.tokenizer, 128, 16)
    blocked = list(chunker._pieces(text))
    blocks = len(list(chunker._blocks(text)))
    monkeypatch.setattr(core.ingest.chunking, "BLOCK_CHUNKS", 10_000)  # one block: the splitter alone
    whole = list(Chunker(encoder.tokenizer, 128, 16)._pieces(text))
    assert len(whole) <= len(blocked) <= len(whole) + blocks
