"""User-supplied text in Streamlit's Markdown: shown as the characters typed, never as markup.

Streamlit renders Markdown in st.markdown, st.caption, st.error/warning/info/success, subheaders, widget
labels, expander labels, spinners, progress texts, metric labels and help tooltips. A name such as
``![i](http://host/x.png)`` would make every viewer's browser fetch that image, ``:red[...]`` colours
text, ``$...$`` typesets maths. Every string a user supplies (file and dataset names, document ids,
queries, instructions, model ids, error messages that quote them) goes through ``md`` first.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one is always
# literal: that covers links and images, emphasis, code spans, headings, lists, tables, HTML and
# entities (&), Streamlit's :directives[] and :shortcodes:, "$" maths and the "<-"/"->" arrows.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"\s*[\r\n\u0085\u2028\u2029]\s*")
# GFM turns bare URLs and e-mail addresses into links after escapes are resolved, so escaping cannot stop
# it; an invisible WORD JOINER (U+2060) after "http", "www", "mailto" or "@" breaks the pattern it looks for.
_AUTOLINK_TRIGGERS = re.compile(r"(?i)(https?(?=:)|www(?=\.)|mailto(?=:)|xmpp(?=:)|@)")
WORD_JOINER = "\u2060"


def md(text: object) -> str:
    """``text`` as Markdown that renders to exactly these characters (and invisible joiners), on one line."""
    one_line = _LINE_BREAKS.sub(" ", str(text))
    return _PUNCTUATION.sub(r"\\\1", _AUTOLINK_TRIGGERS.sub(rf"\1{WORD_JOINER}", one_line))
