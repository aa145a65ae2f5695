"""User-supplied text shown by the app renders as the characters typed: Markdown (ui.safe.md) and plotly (ui.charts)."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from ui.safe import WORD_JOINER, md

HOSTILE = [
    "![i](http://127.0.0.1:9/x.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "<b>bold</b> &lt;b&gt; &amp;",
    "**bold** __under__ *it* _it_ ~~gone~~ `code`",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "line one\nline two\n\n    indented code",
    ":red[coloured] :material/home: :smile:",
    "$x^2$ and $$\\int$$",
    "<- -> <-> -- >= <=",
    "back\\slash \\* \\_",
    'o\'brien "quoted"',
    "http://127.0.0.1:9/auto www.example.com HTTPS://X.Y mailto:a@b.co someone@example.org",
    "emoji 🦩 and 名字",
    "[ref]: http://127.0.0.1:9/y.png",
]


def _render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def _paragraph_text(rendered: str) -> str:
    """The text of a rendered single paragraph; fails if any other element was made."""
    assert rendered.startswith("<p>") and rendered.endswith("</p>\n"), rendered
    inner = rendered[3:-5].replace("<strong>File</strong>", "File")
    assert "<" not in inner, rendered  # no tag: no image, link, emphasis, code, heading, list, table
    text = html.unescape(inner)
    # GFM's autolink literals (mdast-util-gfm-autolink-literal's patterns) run on the text after escapes:
    assert not re.search(r"(?i)(https?://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(\.[-\w]+)+", text), text
    return text.replace(WORD_JOINER, "")


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t)[:40])
def test_md_renders_exactly_the_characters_typed(text):
    """An independent CommonMark renderer (markdown-it-py) turns md(text) into one paragraph of that text."""
    one_line = re.sub(r"\s*\n\s*", " ", text)
    assert _paragraph_text(_render(md(text))) == one_line


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t)[:40])
def test_md_inside_a_sentence_and_bold_stays_literal(text):
    one_line = re.sub(r"\s*\n\s*", " ", text)
    rendered = _render(f"**File** {md(text)} was not indexed: {md(text)}")
    assert "<strong>File</strong>" in rendered
    assert _paragraph_text(rendered) == f"File {one_line} was not indexed: {one_line}"


def test_md_leaves_no_directive_math_or_shortcode_unescaped():
    out = md(":red[x] $y$ :smile:")
    assert re.search(r"(?<!\\)[:$\[\]]", out) is None


def test_chart_labels_are_escaped_and_never_templates():
    from ui.charts import latency_figure, per_query_lift_figure, plain

    assert plain("<b>x</b> %{y}") == "&lt;b&gt;x&lt;/b&gt; %{y}"
    figure = latency_figure([{"query": "<b>bold</b> %{y}", "embed_query": 1.0}])
    assert figure.data[0].x[0] == "1. &lt;b&gt;bold&lt;/b&gt; %{y}"

    class Evaluation:
        baseline = "bi_encoder"
        metrics = {"bi_encoder": {"<q1>": {"ndcg@10": 0.1}}, "reranked": {"<q1>": {"ndcg@10": 0.5}}}
        queries = [type("Q", (), {"qid": "<q1>", "query": "<a href='http://127.0.0.1:9'>x</a>"})()]

    bar = per_query_lift_figure(Evaluation()).data[0]
    assert list(bar.x) == ["&lt;q1&gt;"] and bar.customdata[0].startswith("&lt;a href=")
    assert "<a" not in bar.hovertemplate
