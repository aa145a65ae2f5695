"""Filter expressions over chunk ids: the only values this project ever puts into a Milvus expression."""

from __future__ import annotations

import re

from core.index.store import VectorStoreError

# Chunk ids are the only values this store ever puts into a filter expression, and only ids made of these
# characters are accepted: no quote, backslash, space or bracket, so an id cannot end a string literal.
# (Expression templates would be the other way, but Milvus Lite 2.5.1 cannot parse "{param}" and Milvus
# 2.3 servers predate them.) Milvus Lite also splices the primary key into an expression inside upsert,
# where an id like "o'brien" fails the whole write.
SAFE_ID = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
ID_BATCH = 1000
LINE_BREAK = re.compile(r"[\r\n]")


def key_literal(key: str) -> str:
    """A double-quoted Milvus string literal of ``key``, which must hold no line break."""
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def after_key(key: str, inclusive: bool) -> str:
    """A filter for the keys after ``key`` (the next page), as tight as a literal can say it.

    ``inclusive`` (stepping over a stretch): the keys from the first one that cannot share ``key``'s
    prefix up to its line break. Otherwise the keys above ``key``, or above the part before its first
    line break (which a literal cannot hold; the caller skips what comes back twice).
    """
    line_break = LINE_BREAK.search(key)
    if line_break is None and not inclusive:
        return f"chunk_id > {key_literal(key)}"
    cut = line_break.start() if line_break else len(key)
    if inclusive and line_break:
        return f"chunk_id >= {key_literal(key[:cut] + chr(ord(key[cut]) + 1))}"
    return f"chunk_id > {key_literal(key[:cut])}"


def check_ids(chunk_ids: list[str]) -> None:
    bad = next((i for i in chunk_ids if not SAFE_ID.fullmatch(i)), None)
    if bad is not None:
        raise VectorStoreError(f"refused chunk id {bad[:60]!r}: ids must be 1-128 of [0-9A-Za-z_.:-]")


def id_filter(chunk_ids: list[str]) -> str:
    """``chunk_id in [...]`` for ids that cannot carry syntax (checked here, refused otherwise)."""
    check_ids(chunk_ids)
    return "chunk_id in [" + ",".join(f'"{i}"' for i in chunk_ids) + "]"
