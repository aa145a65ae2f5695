"""Splitting documents into chunks that fit the bi-encoder's window, counted in its own tokens.

semantic-text-splitter does the splitting (paragraph, then sentence, then word boundaries) and returns
character offsets, so every chunk traces back to its place in the source. Long runs are pre-cut into
blocks of a few chunks' worth (``Chunker._blocks``), which keeps chunking linear in the text's length.
"""

from __future__ import annotations

import re
import unicodedata

from semantic_text_splitter import TextSplitter
from tokenizers import Tokenizer

from core.chunks import MAX_CHUNK_BYTES, Chunk, make_chunk_id
from core.ingest.parsing import ParsedDocument, ParsedFile

# The splitter sees at most this many chunks' worth of tokens at once (see Chunker._blocks), found in
# a window of this many characters per token (prose runs at about 4.5).
BLOCK_CHUNKS = 8
BLOCK_CHARS_PER_TOKEN = 4
SENTENCE_END = re.compile(r"[.!?]\s|[。！？]")
JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, variation selectors: part of the grapheme before


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
        self._block_tokens = BLOCK_CHUNKS * capacity

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
        """The splitter's chunks, block by block, each cut further if it is longer than the index stores.

        A token can stand for any number of characters (a 200 kB run with no spaces is one [UNK]), so
        the token budget alone does not bound a chunk's size in bytes.
        """
        for block_start, block_end in self._blocks(text):
            for start, piece in self._splitter.chunk_indices(text[block_start:block_end]):
                start += block_start
                if len(piece.encode()) <= MAX_CHUNK_BYTES:
                    yield start, piece
                    continue
                step = MAX_CHUNK_BYTES // 4  # characters: at most 4 bytes each in UTF-8
                for offset in range(0, len(piece), step):
                    yield start + offset, piece[offset : offset + step]

    def _blocks(self, text: str):
        """(start, end) of blocks of at most BLOCK_CHUNKS chunks' worth of tokens, cut at the best boundary.

        The splitter's time per chunk grows with the length of the stretch it has no boundary in (text
        with no sentence end, or no space at all, made it quadratic: 8 MB took minutes). Blocks bound
        that stretch, so chunking is linear in the text's length. A block ends at a paragraph break if
        it can, else a line break, a sentence end, a space, and only then mid-word; chunks never span
        two blocks, so on prose the chunks are the splitter's own but for one shorter chunk per block.
        """
        position = 0
        while position < len(text):
            window_end = min(len(text), position + self._block_tokens * BLOCK_CHARS_PER_TOKEN)
            offsets = self.tokenizer.encode(text[position:window_end], add_special_tokens=False).offsets
            if len(offsets) > self._block_tokens:
                limit = position + offsets[self._block_tokens - 1][1]
            elif window_end == len(text):
                yield position, len(text)
                return
            else:
                limit = window_end
            cut = max(_best_cut(text, position + (limit - position) // 2, limit), position + 1)
            yield position, cut
            position = cut


def _best_cut(text: str, low: int, high: int) -> int:
    """Where to end a block within ``text[low:high]``: after the last paragraph break, line break,
    sentence end or space there, else at ``high`` (moved back off a combining mark or joiner)."""
    for separator in ("\n\n", "\n"):
        found = text.rfind(separator, low, high)
        if found >= 0:
            return found + len(separator)
    last = None
    for last in SENTENCE_END.finditer(text, low, high):
        pass
    if last is not None:
        return last.end()
    found = max(text.rfind(" ", low, high), text.rfind("\t", low, high))
    if found >= 0:
        return found + 1
    cut = high
    while low + 1 < cut < len(text) and (
        unicodedata.combining(text[cut]) or text[cut] in JOINERS or text[cut - 1] in JOINERS
    ):
        cut -= 1
    return cut
