"""Turning an uploaded file's bytes into documents made of text sections.

Each format is read by a maintained library (pypdf, python-docx, BeautifulSoup, csv, json). A file
that cannot be read raises ``IngestError`` naming the file and the cause; a file that is partly bad
(a JSONL line that is not JSON, a CSV row with no text) keeps its good parts and reports the rest as
warnings, so one bad row never costs the user the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

from core.errors import ExplorerError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm", ".csv", ".json", ".jsonl")
# Columns a CSV's text most likely lives in, in order of preference, when the user has not picked one.
LIKELY_TEXT_COLUMNS = ("text", "content", "body", "passage", "document", "abstract", "description")
LIKELY_ID_COLUMNS = ("_id", "id", "doc_id", "docid")
MAX_DOC_ID_BYTES = 512
# A .docx is a zip: its members are checked before anything is decompressed. A real one holds a few
# dozen parts; a zip bomb may hold millions, or declare gigabytes.
MAX_ZIP_MEMBERS = 10_000


class IngestError(ExplorerError):
    """A file that cannot be indexed; the message names the file and the cause."""

    def __init__(self, source: str, cause: str):
        super().__init__(f"{source}: {cause}", cause)
        self.source = source


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text; ``page`` is 1-based for PDFs and None elsewhere."""

    text: str
    page: int | None = None


@dataclass
class ParsedDocument:
    doc_id: str
    title: str
    sections: list[Section]


@dataclass
class ParsedFile:
    source: str
    documents: list[ParsedDocument]
    warnings: list[str] = field(default_factory=list)


def parse_file(
    source: str,
    data: bytes,
    *,
    max_bytes: int | None = None,
    csv_text_column: str | None = None,
) -> ParsedFile:
    """Parse one file. ``source`` is the name shown to the user and the key of the file in the index."""
    suffix = PurePath(source).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(
            source, f"unsupported file type {suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if max_bytes is not None and len(data) > max_bytes:
        raise IngestError(
            source,
            f"file is {_size(len(data))}, over the {_size(max_bytes)} limit (RERANK_MAX_FILE_MB)",
        )
    if not data.strip():
        raise IngestError(source, "file is empty")

    if suffix == ".pdf":
        parsed = _parse_pdf(source, data, max_bytes)
    elif suffix == ".docx":
        _check_zip(source, data, max_bytes)
        parsed = _single(source, _parse_docx(source, data))
    elif suffix in (".html", ".htm"):
        parsed = _single(source, _parse_html(data))
    elif suffix == ".csv":
        parsed = _parse_csv(source, _decode(source, data), csv_text_column)
    elif suffix == ".jsonl":
        parsed = _parse_jsonl(source, _decode(source, data))
    elif suffix == ".json":
        parsed = _parse_json(source, _decode(source, data))
    else:
        parsed = _single(source, _decode(source, data))

    if not parsed.documents:
        raise IngestError(source, "no text found" + (f" ({'; '.join(parsed.warnings[:3])})" if parsed.warnings else ""))
    if max_bytes is not None:
        _check_text_size(source, sum(len(s.text.encode()) for d in parsed.documents for s in d.sections), max_bytes)
    return parsed


def _check_text_size(source: str, size: int, max_bytes: int) -> None:
    """The text a file yields is capped like the file itself: a small PDF or .docx can expand a thousandfold."""
    if size > max_bytes:
        raise IngestError(
            source,
            f"its text is over {_size(max_bytes)} once extracted, the limit per file (RERANK_MAX_FILE_MB); "
            "split the file",
        )


def _check_zip(source: str, data: bytes, max_bytes: int | None) -> None:
    """Refuse a zip (a .docx) whose members would expand past the limit, before any is decompressed.

    The sizes are those the zip declares; Python's zipfile never yields more than a member declares, so
    a member that lies fails its own read instead of filling memory.
    """
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise IngestError(source, f"not a readable .docx ({type(exc).__name__}: {exc})") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise IngestError(source, f"the .docx holds {len(members):,} parts; a real one has a few dozen")
    expanded = sum(member.file_size for member in members)
    if max_bytes is not None and expanded > max_bytes:
        raise IngestError(
            source,
            f"the .docx expands to {_size(expanded)}, over the {_size(max_bytes)} limit per file "
            "(RERANK_MAX_FILE_MB); a zip bomb, or a document to split",
        )


def csv_columns(source: str, data: bytes) -> list[str]:
    """The header of a CSV file, so the UI can let the user pick the text column before indexing."""
    reader = csv.reader(io.StringIO(_decode(source, data)))
    header = next(reader, None)
    if not header:
        raise IngestError(source, "CSV has no header row")
    return header


def _size(n: int) -> str:
    """A byte count for a message; a fractional limit such as 0.5 MiB must not print as "0 MiB"."""
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def _decode(source: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(
            source,
            f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); re-save the file as UTF-8",
        ) from None


def _single(source: str, text: str) -> ParsedFile:
    if not text.strip():
        return ParsedFile(source, [], ["the file contains no text"])
    return ParsedFile(source, [ParsedDocument(doc_id=source, title=PurePath(source).name, sections=[Section(text)])])


def _parse_pdf(source: str, data: bytes, max_bytes: int | None = None) -> ParsedFile:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are "encrypted" with an empty user password only to restrict printing or copying:
        # any reader opens them, and so do we.
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(source, "PDF is protected by a password; remove it and upload the file again")
        pages, extracted = [], 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            extracted += len(pages[-1].encode())
            if max_bytes is not None:  # stop at the limit rather than extract every page of a huge file
                _check_text_size(source, extracted, max_bytes)
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise IngestError(source, f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    sections = [Section(text, page=number) for number, text in enumerate(pages, start=1) if text.strip()]
    if not sections:
        return ParsedFile(source, [], [f"none of its {len(pages)} pages has extractable text (a scan? run OCR first)"])
    title = PurePath(source).name
    return ParsedFile(source, [ParsedDocument(doc_id=source, title=title, sections=sections)])


def _parse_docx(source: str, data: bytes) -> str:
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import XMLSyntaxError

    try:
        document = docx.Document(io.BytesIO(data))
    # A zip whose parts are not the XML a .docx holds fails inside python-docx with XMLSyntaxError or
    # AttributeError.
    except (OpcError, zipfile.BadZipFile, KeyError, ValueError, XMLSyntaxError, AttributeError) as exc:
        raise IngestError(source, f"not a readable .docx ({type(exc).__name__}: {exc})") from None
    blocks = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(block for block in blocks if block.strip())


def _parse_html(data: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for invisible in soup(["script", "style", "noscript", "template", "head", "svg"]):
        invisible.decompose()
    text = soup.get_text("\n")
    lines = (line.strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _parse_csv(source: str, text: str, text_column: str | None) -> ParsedFile:
    # The csv module refuses fields over 128 KiB by default; no field can be longer than the file itself.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise IngestError(source, "CSV has no header row")
    column = text_column or guess_text_column(header)
    if column not in header:
        raise IngestError(source, f"CSV has no column {column!r}; columns: {', '.join(header)}")
    id_column = _guess_column(header, LIKELY_ID_COLUMNS)
    title_column = _guess_column(header, ("title",))
    documents, warnings, rows = [], [], 0
    for rows, row in enumerate(reader, start=1):
        value = (row.get(column) or "").strip()
        line = reader.line_num
        if not value:
            warnings.append(f"line {line}: empty {column!r}, skipped")
            continue
        doc_id = (row.get(id_column) or "").strip() if id_column else ""
        documents.append(
            ParsedDocument(
                doc_id=doc_id or f"row-{rows}",
                title=(row.get(title_column) or "").strip() if title_column else "",
                sections=[Section(value)],
            )
        )
    if rows == 0:
        raise IngestError(source, "CSV has a header but no rows")
    return ParsedFile(source, _dedupe_ids(documents, warnings), warnings)


def guess_text_column(header: list[str]) -> str:
    """The column a CSV's text most likely lives in: a usual name, else the first column."""
    return _guess_column(header, LIKELY_TEXT_COLUMNS) or header[0]


def _guess_column(header: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {name.strip().lower(): name for name in header}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _parse_jsonl(source: str, text: str) -> ParsedFile:
    documents, warnings = [], []
    # Split on "\n" only: str.splitlines() also breaks at U+2028, U+2029 and U+0085, which JSON allows raw
    # inside strings, so it would cut valid lines in two and misnumber every line after them.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno}), skipped")
            continue
        except RecursionError:
            warnings.append(f"line {number}: nested too deeply to read, skipped")
            continue
        document = _beir_row(row, f"line {number}", warnings)
        if document:
            documents.append(document)
    return ParsedFile(source, _dedupe_ids(documents, warnings), warnings)


def _parse_json(source: str, text: str) -> ParsedFile:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(source, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise IngestError(source, "JSON nested too deeply to read") from None
    rows = payload if isinstance(payload, list) else [payload]
    documents, warnings = [], []
    for number, row in enumerate(rows, start=1):
        document = _beir_row(row, f"item {number}", warnings)
        if document:
            documents.append(document)
    return ParsedFile(source, _dedupe_ids(documents, warnings), warnings)


def _beir_row(row: object, where: str, warnings: list[str]) -> ParsedDocument | None:
    """A BEIR corpus row: ``_id``, ``title`` and ``text``."""
    if not isinstance(row, dict):
        warnings.append(f"{where}: expected an object with _id, title, text; skipped")
        return None
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        warnings.append(f"{where}: no 'text' field, skipped")
        return None
    doc_id = row.get("_id", row.get("id"))
    if doc_id is None or str(doc_id).strip() == "":
        warnings.append(f"{where}: no '_id' field, skipped")
        return None
    title = (row.get("title") if isinstance(row.get("title"), str) else "").strip()
    return ParsedDocument(doc_id=str(doc_id), title=title, sections=[Section(titled_text(title, text))])


def titled_text(title: str, text: str) -> str:
    """What is embedded and reranked for a titled row: the title carries the topic, so it leads the text,
    unless the text already starts with it, as in many BEIR corpora."""
    if title and not text.lstrip().lower().startswith(title.lower()):
        return f"{title}\n\n{text}"
    return text


def _dedupe_ids(documents: list[ParsedDocument], warnings: list[str]) -> list[ParsedDocument]:
    seen: set[str] = set()
    unique = []
    for document in documents:
        if len(document.doc_id.encode()) > MAX_DOC_ID_BYTES:
            warnings.append(f"id {document.doc_id[:40]!r}… is longer than {MAX_DOC_ID_BYTES} bytes; skipped")
            continue
        if document.doc_id in seen:
            warnings.append(f"duplicate id {document.doc_id!r}: later copy skipped")
            continue
        seen.add(document.doc_id)
        unique.append(document)
    return unique
