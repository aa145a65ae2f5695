"""User-supplied names (files, documents): what the index refuses, and how text output quotes them."""

from __future__ import annotations

import json

# Line breaks JSON leaves raw outside ASCII; str.splitlines() and some viewers break lines at them.
_UNICODE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def quoted(name: str) -> str:
    """A user-supplied name for a line of text output: in double quotes, every line break and control
    character escaped (JSON's rules), so a name never splits or fakes a line."""
    text = json.dumps(name, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
    for raw, escaped in _UNICODE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text


def name_problem(name: str, max_bytes: int) -> str | None:
    """Why a file name cannot be a key of the index, or None; any other Unicode name is fine."""
    if not name.strip():
        return "the file has no name"
    if "\x00" in name:
        return "the file name contains a NUL character; rename the file"
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return "the file name is not valid Unicode; rename the file"
    if size > max_bytes:
        return f"the file name is {size} bytes long, over the index's limit of {max_bytes}; shorten it"
    return None
