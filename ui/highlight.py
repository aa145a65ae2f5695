"""Snippets of a chunk around the query's terms, with the terms marked for display."""

from __future__ import annotations

import html
import re

# Words too common to be worth highlighting.
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or the to what when where which who why with".split()
)


def query_terms(query: str) -> list[str]:
    words = re.findall(r"\w+", query.lower())
    return sorted({w for w in words if w not in STOP_WORDS and len(w) > 1}, key=len, reverse=True)


def _pattern(terms: list[str]) -> re.Pattern | None:
    if not terms:
        return None
    # Prefix match at a word start, so "bond" also marks "bonds".
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)


def snippet(text: str, query: str, width: int = 280) -> str:
    """About ``width`` characters of ``text`` centred on the first query term, as HTML with <mark>s."""
    pattern = _pattern(query_terms(query))
    match = pattern.search(text) if pattern else None
    start = 0
    if match and len(text) > width:
        start = max(0, min(match.start() - width // 3, len(text) - width))
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 30 and space >= 0 else start
    end = min(len(text), start + width)
    piece = " ".join(text[start:end].split())  # a one-line preview: headings and blank lines flattened
    return ("…" if start > 0 else "") + mark(piece, query) + ("…" if end < len(text) else "")


def mark(text: str, query: str) -> str:
    """``text`` HTML-escaped with every query term wrapped in <mark>."""
    pattern = _pattern(query_terms(query))
    if pattern is None:
        return escape_html(text)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape_html(text[last : match.start()]))
        out.append(f"<mark>{escape_html(match.group(0))}</mark>")
        last = match.end()
    out.append(escape_html(text[last:]))
    return "".join(out)


def escape_html(text: str) -> str:
    # "$" too: markdown renderers with a math extension (Streamlit's) would typeset "$5 and $7" as maths.
    return html.escape(text).replace("$", "&#36;")
