"""Splitting documents into chunks that fit the bi-encoder's window, counted in its own tokens.

semantic-text-splitter does the splitting (it prefers paragraph, then sentence, then word boundaries)
and returns character offsets, so every chunk can be traced back to its place in the source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from semantic_text_splitter import TextSplitter
from tokenizers import Tokenizer

from core.parsing import ParsedDocument, ParsedFile

# What the vector store keeps per field (Milvus VARCHAR limits, in bytes).
MAX_CHUNK_BYTES = 65_535
MAX_ID_BYTES = 1_024


@dataclass(frozen=True)
class Chunk:
    """One indexed unit. ``text == section_text[start:end]`` of its document's section (page for PDFs)."""

    chunk_id: str
    source: str
    doc_id: str
    title: str
    page: int | None
    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


class Chunker:
    """Splits text into chunks of at most ``max_tokens`` tokens, special tokens included."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap: int):
        if max_tokens < 8:
            raise ValueError(f"chunk size must be at least 8 tokens, got {max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise ValueError(f"chunk overlap must be between 0 and the chunk size ({max_tokens}), got {overlap}")
        # A private copy with padding and truncation off: a padded or truncated count would be wrong.
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_tokens = max_tokens
        self.overlap = overlap
        # The splitter sizes chunks without the special tokens ([CLS]/[SEP]) the model adds to every input,
        # so it gets a capacity that leaves room for them; otherwise a full chunk is max_tokens + 2 tokens.
        capacity = max_tokens - len(self.tokenizer.encode("").ids)
        self._splitter = TextSplitter.from_huggingface_tokenizer(
            self.tokenizer, capacity=capacity, overlap=min(overlap, capacity - 1)
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)

    def chunk_file(self, parsed: ParsedFile) -> list[Chunk]:
        return [chunk for document in parsed.documents for chunk in self.chunk_document(parsed.source, document)]

    def chunk_document(self, source: str, document: ParsedDocument) -> list[Chunk]:
        chunks = []
        for section in document.sections:
            for start, text in self._pieces(section.text):
                chunks.append(
                    Chunk(
                        chunk_id=make_chunk_id(source, document.doc_id, section.page, start, text),
                        source=source,
                        doc_id=document.doc_id,
                        title=document.title,
                        page=section.page,
                        start=start,
                        end=start + len(text),
                        text=text,
                    )
                )
        return chunks

    def _pieces(self, text: str):
        """The splitter's chunks, each cut further if it is longer than the index stores.

        A token can stand for any number of characters (a 200 kB run with no spaces is one [UNK]), so
        the token budget alone does not bound a chunk's size in bytes.
        """
        for start, piece in self._splitter.chunk_indices(text):
            if len(piece.encode()) <= MAX_CHUNK_BYTES:
                yield start, piece
                continue
            step = MAX_CHUNK_BYTES // 4  # characters: at most 4 bytes each in UTF-8
            for offset in range(0, len(piece), step):
                yield start + offset, piece[offset : offset + step]


def make_chunk_id(source: str, doc_id: str, page: int | None, start: int, text: str) -> str:
    """32 hex digits that name one chunk: its file, document, page, offset and text, hashed.

    Hex cannot carry filter syntax, so a file or document name never reaches a store expression; the
    JSON list keeps the fields apart, so ("c.jsonl", "x.txt") and ("c.jsonl#x.txt", ...) differ; and the
    text is part of it, so a changed file's new chunks never overwrite its old rows before the catalog
    says so (an interrupted write can always be rolled back).
    """
    key = json.dumps([source, doc_id, page, start, text])
    return hashlib.sha256(key.encode()).hexdigest()[:32]
