"""Parsing each supported format, and refusing bad input with a specific ``IngestError``.

Every fixture is built here, in memory or under tmp_path: real PDFs (reportlab), real .docx files
(python-docx), and hand-written text formats. Nothing touches the network.
"""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest

from core.ingest.parsing import IngestError, ParsedFile, Section, csv_columns, parse_file

# --- builders ----------------------------------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A real PDF, one page per entry, each page's lines drawn as text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for lines in pages:
        y = 800
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def jsonl(*rows: object) -> bytes:
    return "\n".join(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows).encode()


def only_text(parsed: ParsedFile) -> str:
    assert len(parsed.documents) == 1
    assert len(parsed.documents[0].sections) == 1
    return parsed.documents[0].sections[0].text


def expect_error(source: str, data: bytes, **kwargs) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse_file(source, data, **kwargs)
    error = info.value
    assert error.source == source
    assert str(error).startswith(f"{source}: ")
    assert error.cause and error.cause in str(error)
    return error


# --- plain text and markdown --------------------------------------------------------------------------


def test_txt_is_one_document_named_after_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First line about rivers.\n\nSecond paragraph about mountains.\n", encoding="utf-8")
    parsed = parse_file(path.name, path.read_bytes())
    assert parsed.source == "notes.txt"
    assert parsed.warnings == []
    [document] = parsed.documents
    assert document.doc_id == "notes.txt"
    assert document.title == "notes.txt"
    assert document.sections == [Section("First line about rivers.\n\nSecond paragraph about mountains.\n", page=None)]


def test_txt_with_utf8_bom_and_non_ascii():
    text = "Café, naïve, 東京, emoji 🎉"
    parsed = parse_file("bom.txt", "\ufeff".encode() + text.encode("utf-8"))
    assert only_text(parsed) == text  # the BOM is dropped, everything else kept verbatim


@pytest.mark.parametrize("name", ["readme.md", "README.MARKDOWN"])
def test_markdown_keeps_its_source_text(name):
    source = "# Title\n\nSome *emphasis* and a [link](https://example.com).\n\n- item one\n- item two\n"
    parsed = parse_file(name, source.encode())
    assert only_text(parsed) == source
    assert parsed.documents[0].doc_id == name


# --- PDF -----------------------------------------------------------------------------------------------


def test_pdf_has_one_section_per_page_with_page_numbers():
    pages = [
        ["Alpha page talks about glaciers.", "Glaciers carve valleys slowly."],
        ["Beta page describes volcanoes.", "Magma rises through the crust."],
        ["Gamma page covers coral reefs.", "Reefs shelter many fish."],
    ]
    parsed = parse_file("atlas.pdf", make_pdf(pages))
    assert parsed.warnings == []
    [document] = parsed.documents
    assert document.doc_id == "atlas.pdf"
    assert document.title == "atlas.pdf"
    assert [section.page for section in document.sections] == [1, 2, 3]
    for section, lines in zip(document.sections, pages):
        for line in lines:
            assert line in section.text
    # Each page's text stays on its own page.
    assert "volcanoes" not in document.sections[0].text
    assert "glaciers" not in document.sections[1].text
    assert "volcanoes" not in document.sections[2].text


def test_pdf_skips_blank_pages_but_keeps_true_page_numbers():
    parsed = parse_file("gap.pdf", make_pdf([["Opening page text."], [], ["Closing page text."]]))
    sections = parsed.documents[0].sections
    assert [s.page for s in sections] == [1, 3]
    assert "Opening page text." in sections[0].text
    assert "Closing page text." in sections[1].text


def test_pdf_without_any_text_is_an_error():
    error = expect_error("scan.pdf", make_pdf([[], []]))
    assert "no text found" in error.cause
    assert "2 pages" in error.cause


# --- DOCX ----------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_table_cells_are_extracted():
    data = make_docx(
        ["The quarterly report covers three regions.", "", "Sales grew in the north."],
        table=[["Region", "Revenue"], ["North", "1200"], ["South", "950"]],
    )
    parsed = parse_file("report.docx", data)
    text = only_text(parsed)
    assert "The quarterly report covers three regions." in text
    assert "Sales grew in the north." in text
    for cell in ("Region", "Revenue", "North", "1200", "South", "950"):
        assert cell in text
    # A table row stays together on one line, its cells side by side.
    assert "North | 1200" in text
    # Empty paragraphs do not leave blank lines behind.
    assert "\n\n" not in text
    assert parsed.documents[0].doc_id == "report.docx"


# --- HTML ----------------------------------------------------------------------------------------------


HTML_PAGE = b"""<!doctype html>
<html>
<head>
  <title>HeadTitleMarker</title>
  <meta charset="utf-8">
  <style>.StyleMarker { color: red; }</style>
  <script>var ScriptMarkerInHead = 1;</script>
</head>
<body>
  <h1>Visible Heading</h1>
  <p>First visible paragraph with <b>bold</b> words.</p>
  <script>console.log("ScriptMarkerInBody");</script>
  <style>p { font-family: StyleMarkerInBody; }</style>
  <noscript>NoscriptMarker</noscript>
  <ul><li>List item one</li><li>List item two</li></ul>
</body>
</html>"""


@pytest.mark.parametrize("name", ["page.html", "page.htm"])
def test_html_keeps_only_visible_text(name):
    text = only_text(parse_file(name, HTML_PAGE))
    for visible in ("Visible Heading", "First visible paragraph with", "bold", "List item one", "List item two"):
        assert visible in text
    for hidden in (
        "HeadTitleMarker",
        "StyleMarker",
        "ScriptMarkerInHead",
        "ScriptMarkerInBody",
        "StyleMarkerInBody",
        "NoscriptMarker",
        "console.log",
        "color: red",
    ):
        assert hidden not in text
    assert "<" not in text and ">" not in text
    assert "\n\n\n" not in text
    assert text == text.strip()


def test_html_with_only_invisible_content_is_an_error():
    error = expect_error(
        "blank.html", b"<html><head><title>Only a title</title></head><body><script>x()</script></body></html>"
    )
    assert "no text found" in error.cause


# --- CSV -----------------------------------------------------------------------------------------------


def test_csv_explicit_text_column_and_id_column():
    data = (
        b"id,title,summary,notes\na1,First,The first summary.,ignore me\na2,Second,The second summary.,ignore me too\n"
    )
    parsed = parse_file("rows.csv", data, csv_text_column="summary")
    assert parsed.warnings == []
    assert [d.doc_id for d in parsed.documents] == ["a1", "a2"]
    assert [d.title for d in parsed.documents] == ["First", "Second"]
    assert [d.sections for d in parsed.documents] == [[Section("The first summary.")], [Section("The second summary.")]]


def test_csv_guesses_text_column_and_uses_row_numbers_without_id_column():
    data = b"label,Text\nspam,Buy cheap watches now\nham,Lunch at noon?\n"
    parsed = parse_file("guess.csv", data)
    assert [d.sections[0].text for d in parsed.documents] == ["Buy cheap watches now", "Lunch at noon?"]
    assert [d.doc_id for d in parsed.documents] == ["row-1", "row-2"]
    assert csv_columns("guess.csv", data) == ["label", "Text"]


def test_csv_empty_text_row_warns_with_its_line_number():
    data = (
        b"_id,text\n"  # line 1
        b'd1,"A quoted field\nthat spans two lines"\n'  # lines 2-3
        b"d2,\n"  # line 4: empty text
        b"d3,   \n"  # line 5: whitespace only
        b"d4,Last good row\n"  # line 6
    )
    parsed = parse_file("gaps.csv", data)
    assert [d.doc_id for d in parsed.documents] == ["d1", "d4"]
    assert parsed.documents[0].sections[0].text == "A quoted field\nthat spans two lines"
    assert len(parsed.warnings) == 2
    assert parsed.warnings[0].startswith("line 4:") and "'text'" in parsed.warnings[0]
    assert parsed.warnings[1].startswith("line 5:")


def test_csv_duplicate_ids_keep_the_first():
    parsed = parse_file("dup.csv", b"id,text\nx,first copy\nx,second copy\ny,other\n")
    assert [(d.doc_id, d.sections[0].text) for d in parsed.documents] == [("x", "first copy"), ("y", "other")]
    assert any("duplicate id 'x'" in w for w in parsed.warnings)


def test_csv_with_a_field_longer_than_the_csv_module_default_limit():
    long_text = "word " * 40_000  # 200 000 characters, over csv's 131 072 default field limit
    parsed = parse_file("long.csv", f"id,text\nbig,{long_text}\n".encode())
    assert parsed.documents[0].sections[0].text == long_text.strip()


# --- JSON and JSONL (BEIR rows) ------------------------------------------------------------------------


def test_json_list_of_beir_rows():
    rows = [
        {"_id": "doc1", "title": "Photosynthesis", "text": "Plants turn light into sugar."},
        {"_id": 2, "title": "", "text": "Untitled body."},
        {"_id": "doc3", "title": "Tides", "text": "Tides follow the moon."},
    ]
    parsed = parse_file("corpus.json", json.dumps(rows).encode())
    assert [d.doc_id for d in parsed.documents] == ["doc1", "2", "doc3"]
    assert [d.title for d in parsed.documents] == ["Photosynthesis", "", "Tides"]
    assert parsed.documents[0].sections[0].text == "Photosynthesis\n\nPlants turn light into sugar."
    assert parsed.documents[1].sections[0].text == "Untitled body."
    assert parsed.warnings == []


def test_json_single_object_and_bad_items():
    parsed = parse_file("one.json", b'{"_id": "solo", "text": "Just one."}')
    assert [(d.doc_id, d.sections[0].text) for d in parsed.documents] == [("solo", "Just one.")]

    parsed = parse_file("mixed.json", json.dumps([{"_id": "ok", "text": "fine"}, "a string", {"_id": "x"}]).encode())
    assert [d.doc_id for d in parsed.documents] == ["ok"]
    assert parsed.warnings[0].startswith("item 2:")
    assert parsed.warnings[1].startswith("item 3:") and "'text'" in parsed.warnings[1]


def test_invalid_json_is_an_error_with_position():
    error = expect_error("broken.json", b'[{"_id": "a", "text": "x"},\n {"_id": ]')
    assert "not valid JSON" in error.cause
    assert "line 2" in error.cause


def test_jsonl_beir_rows_title_prepended_unless_text_starts_with_it():
    data = jsonl(
        {"_id": "d1", "title": "Black holes", "text": "Gravity so strong that light cannot escape."},
        {"_id": "d2", "title": "Neutron stars", "text": "Neutron stars are dense remnants of supernovae."},
        {"_id": "d3", "title": "  ", "text": "Blank title."},
        {"_id": "d4", "text": "No title field at all."},
        {"id": "d5", "title": "Quasars", "text": "Alternate id key."},
    )
    parsed = parse_file("corpus.jsonl", data)
    assert parsed.warnings == []
    by_id = {d.doc_id: d for d in parsed.documents}
    assert list(by_id) == ["d1", "d2", "d3", "d4", "d5"]
    assert by_id["d1"].title == "Black holes"
    assert by_id["d1"].sections == [Section("Black holes\n\nGravity so strong that light cannot escape.")]
    # Already starts with its title (case-insensitively): not repeated.
    assert by_id["d2"].sections[0].text == "Neutron stars are dense remnants of supernovae."
    assert by_id["d3"].sections[0].text == "Blank title." and by_id["d3"].title == ""
    assert by_id["d4"].sections[0].text == "No title field at all."
    assert by_id["d5"].sections[0].text == "Quasars\n\nAlternate id key."


def test_jsonl_broken_line_in_the_middle_keeps_the_rest():
    data = jsonl(
        {"_id": "a", "text": "alpha"},  # line 1
        {"_id": "b", "text": "beta"},  # line 2
        '{"_id": "c", "text": "gamma"',  # line 3: truncated
        "",  # line 4: blank, ignored
        {"_id": "d", "text": "delta"},  # line 5
    )
    parsed = parse_file("mixed.jsonl", data)
    assert [d.doc_id for d in parsed.documents] == ["a", "b", "d"]
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("line 3: not valid JSON")


def test_jsonl_rows_without_text_or_id_are_warned_by_line():
    data = jsonl(
        {"_id": "ok", "text": "fine"},
        {"_id": "no-text"},
        {"text": "no id"},
        [1, 2, 3],
    )
    parsed = parse_file("partial.jsonl", data)
    assert [d.doc_id for d in parsed.documents] == ["ok"]
    assert [w.split(":")[0] for w in parsed.warnings] == ["line 2", "line 3", "line 4"]


def test_jsonl_line_numbers_survive_unicode_line_separators_and_crlf():
    # U+2028/U+2029/U+0085 are legal raw inside JSON strings; they must not split a line.
    data = (
        jsonl(
            {"_id": "a", "text": "one\u2028two\u2029three\x85four"},
            "{oops",
            {"_id": "b", "text": "after"},
        )
        .decode()
        .replace("\n", "\r\n")
        .encode()
    )
    parsed = parse_file("seps.jsonl", data)
    assert [d.doc_id for d in parsed.documents] == ["a", "b"]
    assert parsed.documents[0].sections[0].text == "one\u2028two\u2029three\x85four"
    assert len(parsed.warnings) == 1 and parsed.warnings[0].startswith("line 2:")


def test_jsonl_every_line_broken_is_an_error():
    error = expect_error("junk.jsonl", b"{not json\n[also not\nplain words\n")
    assert "no text found" in error.cause
    assert "line 1" in error.cause and "not valid JSON" in error.cause


def test_jsonl_duplicate_ids_keep_the_first_copy():
    data = jsonl(
        {"_id": "same", "text": "original"},
        {"_id": "other", "text": "different"},
        {"_id": "same", "text": "later copy"},
    )
    parsed = parse_file("dups.jsonl", data)
    assert [(d.doc_id, d.sections[0].text) for d in parsed.documents] == [("same", "original"), ("other", "different")]
    assert parsed.warnings == ["duplicate id 'same': later copy skipped"]


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.csv", "empty.jsonl", "empty.docx"])
def test_zero_byte_file_is_empty(name):
    assert expect_error(name, b"").cause == "file is empty"


@pytest.mark.parametrize("data", [b"   ", b"\n\n\t \r\n", b" \x0b\x0c "])
def test_whitespace_only_file_is_empty(data):
    assert expect_error("blank.txt", data).cause == "file is empty"


def test_whitespace_only_markdown_after_decoding_has_no_text():
    # Non-breaking spaces are not bytes.strip() whitespace but are whitespace once decoded.
    error = expect_error("nbsp.md", "\u00a0\u00a0\n".encode())
    assert "no text found" in error.cause


def test_binary_junk_named_pdf():
    junk = bytes(random.Random(1).randrange(256) for _ in range(4096))
    error = expect_error("fake.pdf", junk)
    assert error.cause.startswith("not a readable PDF (")


def test_pdf_header_with_garbage_body():
    error = expect_error("truncated.pdf", make_pdf([["real text"]])[:200])
    assert error.cause.startswith("not a readable PDF (")


def test_random_bytes_named_docx():
    junk = bytes(random.Random(2).randrange(256) for _ in range(4096))
    error = expect_error("fake.docx", junk)
    assert error.cause.startswith("not a readable .docx (")
    assert "BadZipFile" in error.cause


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({"hello.txt": "just a zip"}, id="zip-without-docx-parts"),
        pytest.param({"[Content_Types].xml": "this is not xml"}, id="content-types-not-xml"),
        pytest.param({"[Content_Types].xml": "<x/>"}, id="content-types-wrong-xml"),
        pytest.param(
            {
                "[Content_Types].xml": '<?xml version="1.0"?>'
                '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"></Types>'
            },
            id="package-without-document",
        ),
    ],
)
def test_valid_zip_that_is_not_a_docx(files):
    error = expect_error("archive.docx", make_zip(files))
    assert error.cause.startswith("not a readable .docx (")


def test_docx_with_corrupt_document_xml():
    with zipfile.ZipFile(io.BytesIO(make_docx(["fine text"]))) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["word/document.xml"] = b"<w:document><unclosed"
    error = expect_error("corrupt.docx", make_zip(parts))
    assert error.cause.startswith("not a readable .docx (")


def test_truncated_docx():
    data = make_docx(["some text"])
    error = expect_error("cut.docx", data[: len(data) // 2])
    assert error.cause.startswith("not a readable .docx (")


@pytest.mark.parametrize("name", ["latin1.txt", "latin1.csv", "latin1.jsonl", "latin1.json", "latin1.md"])
def test_invalid_utf8_names_the_byte_and_offset(name):
    data = "Résumé".encode("latin-1")  # b'R\xe9sum\xe9': 0xe9 at offset 1 is not valid UTF-8 here
    error = expect_error(name, data)
    assert "UTF-8" in error.cause
    assert "0xe9" in error.cause
    assert "offset 1" in error.cause


def test_invalid_utf8_offset_is_a_byte_offset():
    data = "héllo ".encode() + b"\xff tail"  # 'é' is two bytes, so 0xff sits at byte 7
    error = expect_error("bad.txt", data)
    assert "byte 0xff at offset 7" in error.cause


def test_csv_header_but_no_rows():
    assert expect_error("header.csv", b"id,text\n").cause == "CSV has a header but no rows"


def test_csv_chosen_column_does_not_exist():
    error = expect_error("cols.csv", b"id,body\n1,hello\n", csv_text_column="text")
    assert "no column 'text'" in error.cause
    assert "id, body" in error.cause


def test_csv_all_rows_empty_is_an_error_listing_the_lines():
    error = expect_error("hollow.csv", b"id,text\n1,\n2,\n")
    assert "no text found" in error.cause
    assert "line 2" in error.cause and "line 3" in error.cause


def test_file_over_max_bytes():
    data = b"x" * 2048
    error = expect_error("big.txt", data, max_bytes=1024)
    assert "over the" in error.cause and "limit" in error.cause
    assert "2.0 KiB" in error.cause and "1.0 KiB" in error.cause
    # Exactly at the limit is fine.
    assert only_text(parse_file("big.txt", data, max_bytes=2048)) == data.decode()


def test_file_over_a_fractional_mib_limit_names_the_real_limit():
    half_mib = 2**19
    error = expect_error("big.md", b"y" * (half_mib + 1), max_bytes=half_mib)
    assert "512.0 KiB limit" in error.cause  # not "0 MiB"
    error = expect_error("huge.txt", b"z" * (3 * 2**20), max_bytes=2 * 2**20)
    assert "3.0 MiB" in error.cause and "2.0 MiB limit" in error.cause


def test_max_bytes_is_checked_before_parsing():
    # Junk that would otherwise be a PDF error reports the size problem first.
    error = expect_error("junk.pdf", b"\x00" * 100, max_bytes=10)
    assert "limit" in error.cause and "PDF" not in error.cause


@pytest.mark.parametrize("name", ["slides.pptx", "image.png", "archive.tar.gz", "Makefile", "data.xml"])
def test_unsupported_extension(name):
    error = expect_error(name, b"some content")
    assert error.cause.startswith("unsupported file type")
    assert ".txt" in error.cause and ".jsonl" in error.cause


def test_extension_match_is_case_insensitive():
    assert only_text(parse_file("UPPER.TXT", b"shouting")) == "shouting"


# --- bombs, caps and protected files --------------------------------------------------------------------


def _docx_with_document(document_xml: bytes) -> bytes:
    """A real .docx whose word/document.xml is replaced, deflated as Word would."""
    with zipfile.ZipFile(io.BytesIO(make_docx(["placeholder"]))) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["word/document.xml"] = document_xml
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _document_xml(paragraph_text: str, paragraphs: int, padding: int = 0) -> bytes:
    namespace = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = f"<w:p><w:r><w:t>{paragraph_text}</w:t></w:r></w:p>".encode() * paragraphs
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{namespace}"><w:body>'.encode()
        + body
        + b" " * padding
        + b"</w:body></w:document>"
    )


def test_a_docx_zip_bomb_is_refused_before_it_is_decompressed():
    import tracemalloc

    bomb = _docx_with_document(_document_xml("x", 1, padding=300 * 2**20))  # 300 MiB of spaces
    assert len(bomb) < 2**20
    tracemalloc.start()
    error = expect_error("bomb.docx", bomb, max_bytes=50 * 2**20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "expands to 300.8 MiB" in error.cause and "50.0 MiB limit" in error.cause
    assert peak < 10 * 2**20  # nothing was inflated


def test_a_small_docx_that_expands_past_the_limit_is_refused():
    data = _docx_with_document(_document_xml("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20, 4000))
    assert len(data) < 200_000
    error = expect_error("expanding.docx", data, max_bytes=2 * 2**20)
    assert "expands to" in error.cause
    assert parse_file("expanding.docx", data, max_bytes=10 * 2**20).documents  # under a higher limit it reads


def test_a_docx_with_too_many_parts_is_refused():
    error = expect_error("parts.docx", make_zip({f"part{i}.xml": "" for i in range(10_001)}))
    assert "10,001 parts" in error.cause


def test_the_text_a_pdf_yields_is_capped_like_a_file():
    lines = ["The same compressible line of text, again and again."] * 40
    data = make_pdf([lines] * 12)
    text_bytes = sum(len(s.text.encode()) for s in parse_file("long.pdf", data).documents[0].sections)
    limit = (len(data) + text_bytes) // 2
    assert len(data) < limit < text_bytes
    error = expect_error("long.pdf", data, max_bytes=limit)
    assert "once extracted" in error.cause and "split the file" in error.cause


def _encrypted_pdf(user_password: str, algorithm: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Quarterly report: revenue grew."]]))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_a_pdf_encrypted_with_an_empty_user_password_is_read(algorithm):
    parsed = parse_file("protected.pdf", _encrypted_pdf("", algorithm))
    assert "revenue grew" in parsed.documents[0].sections[0].text


def test_a_pdf_that_needs_a_password_is_a_clear_error():
    error = expect_error("locked.pdf", _encrypted_pdf("s3cret", "AES-256"))
    assert "password" in error.cause


def test_a_deeply_nested_jsonl_line_fails_alone():
    data = jsonl({"_id": "a", "text": "First row."}, "[" * 100_000 + "]" * 100_000, {"_id": "b", "text": "Last row."})
    parsed = parse_file("deep.jsonl", data)
    assert [d.doc_id for d in parsed.documents] == ["a", "b"]
    assert any("line 2" in w and "nested too deeply" in w for w in parsed.warnings)


def test_a_deeply_nested_json_file_is_a_clear_error():
    error = expect_error("deep.json", ("[" * 100_000 + "]" * 100_000).encode())
    assert "nested too deeply" in error.cause
