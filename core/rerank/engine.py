"""A fast scoring engine for causal-LM rerankers such as zerank-2, on the CrossEncoder's own pieces.

It computes the number ``CrossEncoder.predict`` computes (the "Yes" logit at the last prompt token)
with less work. Decisions a maintainer must not undo:

- The token ids are the CrossEncoder's own (``CrossEncoder.preprocess``: its tokenizer, chat template,
  truncation and suffix restore), only the padding stripped; so the engine feeds exactly predict's tokens.
- Pairs are sorted by length and batched by a token budget (rows x padded length), not a row count.
- The pairs of one query share a token prefix (the longest common prefix of the actual ids), run once;
  its key/value cache is reused for every document.
- Batches are right-padded through the base model under the causal mask (no padding mask needed);
  positions count from 0 (from the prefix length after a prefix) as in an unpadded forward.
- The score is one dot product with the "Yes" row of the LM head (minus "No" for a two-token head), in
  float32; the vocabulary is never projected.

Scores agree with ``predict`` to float rounding and do not depend on the batching (the tests hold both).
Models it cannot score exactly are named by ``unsupported_reason`` and fall back to ``predict``.
Measurements and the designs that were tried and dropped: docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from core.devices import idle_cores

# Decoder families whose causal-LM head is exactly ``lm_head(last_hidden_state)``: no logit scale, no
# soft-capping, no final-layer tricks. Others fall back to ``predict``.
PLAIN_HEAD_MODEL_TYPES = {"qwen3", "qwen2", "llama", "mistral"}

# Tokens (rows x padded length) per forward pass. On a CPU the matmuls are efficient from a few hundred
# rows on, and larger batches only add padding (measured above: 1024 beats 4096 by 1.3x). On a GPU bigger
# batches keep the matrix units busy; 8192 is a guess not tuned on a GPU (``bench_rerank --token-budget``).
DEFAULT_TOKEN_BUDGET = {"cuda": 8192, "cpu": 1024}
MAX_ROWS = 512
TOKENIZE_CHUNK = 64


def unsupported_reason(cross_encoder) -> str | None:
    """Why the engine cannot score this CrossEncoder exactly, or None when it can."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore

    try:
        modules = list(cross_encoder)
    except TypeError:
        return "it is not a sentence-transformers model"
    if len(modules) != 2 or not isinstance(modules[0], Transformer) or not isinstance(modules[1], LogitScore):
        return "it is not a text-generation Transformer followed by LogitScore"
    transformer, head = modules
    if transformer.transformer_task != "text-generation" or transformer.backend != "torch":
        return f"its Transformer is {transformer.transformer_task!r} on {transformer.backend!r}"
    if head.module_input_name != "causal_logits":
        return f"LogitScore reads {head.module_input_name!r}"
    causal_lm = transformer.model
    model_type = getattr(causal_lm.config, "model_type", None)
    if model_type not in PLAIN_HEAD_MODEL_TYPES:
        return f"model type {model_type!r} is not known to have a plain LM head"
    for attribute in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(causal_lm.config, attribute, None) not in (None, 1, 1.0):
            return f"its head applies {attribute}"
    if transformer.tokenizer is None:
        return "it has no tokenizer"
    return None


@dataclass
class EngineStats:
    pairs: int = 0
    batches: int = 0
    real_tokens: int = 0  # the pairs' own tokens
    computed_tokens: int = 0  # tokens run through the model: padding in, reused prefixes once
    threads: int = 0  # torch threads the last scoring ran on (CPU; 0 before any)


class RerankEngine:
    """Scores (query, document) pairs with a loaded causal-LM CrossEncoder, as ``predict`` would.

    Not thread-safe on its own: ``core.rerank.local.CrossEncoderReranker`` serialises its calls.
    """

    def __init__(
        self,
        cross_encoder,
        token_budget: int | None = None,
        max_rows: int = MAX_ROWS,
        reuse_prefix: bool = True,
        adapt_threads: bool = True,
    ):
        reason = unsupported_reason(cross_encoder)
        if reason:
            raise ValueError(f"the rerank engine cannot score this model: {reason}")
        self.cross_encoder = cross_encoder
        transformer, head = list(cross_encoder)
        self.transformer = transformer
        self.causal_lm = transformer.model
        self.base = getattr(self.causal_lm, self.causal_lm.base_model_prefix)
        self.true_token_id = head.true_token_id
        self.false_token_id = head.false_token_id
        self.token_budget = token_budget or DEFAULT_TOKEN_BUDGET.get(self.device.type, DEFAULT_TOKEN_BUDGET["cpu"])
        self.max_rows = max_rows
        # A cached prefix is only reused on plain full-attention stacks (Qwen3 as zerank-2 configures it):
        # sliding-window layers would need their own cache layout.
        layer_types = getattr(self.causal_lm.config, "layer_types", None) or ["full_attention"]
        self.reuse_prefix = reuse_prefix and set(layer_types) == {"full_attention"}
        self.pad_id = transformer.tokenizer.pad_token_id or 0
        self.stats = EngineStats()
        # On a CPU another busy process takes cores from torch's thread pool, and every one of the
        # engine's many ops then waits for its slowest thread: use only the cores that are idle.
        self.adapt_threads = adapt_threads

    @contextmanager
    def _threads_for_idle_cores(self) -> Iterator[None]:
        if not self.adapt_threads or self.device.type != "cpu":
            yield
            return
        configured = torch.get_num_threads()
        idle = idle_cores()
        threads = configured if idle is None else max(1, min(configured, round(idle)))
        if threads != configured:
            torch.set_num_threads(threads)
        self.stats.threads = threads
        try:
            yield
        finally:
            if threads != configured:
                torch.set_num_threads(configured)

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    def _head_rows(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LM head's row(s) for the true (and false) token, in float32: (tokens, hidden), bias."""
        lm_head = self.causal_lm.get_output_embeddings()
        ids = [self.true_token_id] + ([self.false_token_id] if self.false_token_id is not None else [])
        weight = lm_head.weight[ids].float()
        bias = lm_head.bias[ids].float() if getattr(lm_head, "bias", None) is not None else None
        return weight, bias

    # -- tokens ---------------------------------------------------------------------------------------

    def tokenize(self, pairs: list[tuple[str, str]]) -> list[list[int]]:
        """Each pair's token ids exactly as ``predict`` feeds them to the model, without padding."""
        try:  # sentence-transformers before 5.4 has no prompts (the GPU machine's may be older)
            prompt = self.cross_encoder._resolve_prompt(None, None)
        except AttributeError:
            prompt = None
        rows: list[list[int]] = []
        for start in range(0, len(pairs), TOKENIZE_CHUNK):
            chunk = [tuple(pair) for pair in pairs[start : start + TOKENIZE_CHUNK]]
            features = self.cross_encoder.preprocess(chunk, prompt=prompt)
            input_ids, mask = features["input_ids"], features["attention_mask"].bool()
            rows.extend(ids[keep].tolist() for ids, keep in zip(input_ids, mask))
        return rows

    # -- scoring --------------------------------------------------------------------------------------

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        return self.score_pairs([(query, text) for text in texts])

    def score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Scores of (query, document) pairs; the pairs of each query share one prefix computation."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        groups: dict[str, list[int]] = {}
        for i, (query, _) in enumerate(pairs):
            groups.setdefault(query, []).append(i)
        with self._threads_for_idle_cores():
            return self.score_token_ids(self.tokenize(pairs), list(groups.values()))

    @torch.inference_mode()
    def score_token_ids(self, rows: list[list[int]], groups: list[list[int]] | None = None) -> np.ndarray:
        """Scores of tokenized rows (each a full templated sequence).

        ``groups`` lists the rows that may share a prefix (those of one query); by default all of them.
        Whatever the grouping, only the prefix the rows really have in common is shared.
        """
        scores = np.zeros(len(rows), dtype=np.float32)
        # Identical rows are scored once: a tie stays an exact tie (float sums can differ by batch position),
        # and a repeated chunk costs nothing.
        first_of: dict[tuple[int, ...], int] = {}
        copies = [first_of.setdefault(tuple(row), i) for i, row in enumerate(rows)]
        unique = set(first_of.values())
        groups = groups if groups is not None else [list(range(len(rows)))]
        groups = [[i for i in group if i in unique] for group in groups]
        weight, bias = self._head_rows()
        weight = weight.to(self.device)
        bias = bias.to(self.device) if bias is not None else None
        for group in groups:
            if not group:
                continue
            members = [rows[i] for i in group]
            prefix = self.shared_prefix(members)
            cache = self._prefix_cache(members[0][:prefix]) if prefix else None
            suffixes = [row[prefix:] for row in members]
            for batch in self.batches([len(suffix) for suffix in suffixes]):
                batch_scores = self._score_batch([suffixes[i] for i in batch], cache, weight, bias)
                scores[[group[i] for i in batch]] = batch_scores
            self.stats.computed_tokens += prefix
        self.stats.real_tokens += sum(len(row) for row in rows)
        self.stats.pairs += len(rows)
        return scores[copies]

    def shared_prefix(self, rows: list[list[int]]) -> int:
        """How many leading tokens all ``rows`` share and can take from one cache (0: none shared).

        Every row keeps at least its last token, whose hidden state is the score, and one row alone
        shares nothing (a prefix pass would be pure overhead).
        """
        if not self.reuse_prefix or len(rows) < 2:
            return 0
        limit = min(len(row) for row in rows) - 1
        first = rows[0]
        length = 0
        while length < limit and all(row[length] == first[length] for row in rows):
            length += 1
        return length

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Row indices, longest first, in batches of at most ``token_budget`` padded tokens.

        Longest first, so that a batch that does not fit in memory fails at once, not at the end.
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches, start = [], 0
        while start < len(order):
            padded = lengths[order[start]]
            rows = max(1, min(self.max_rows, self.token_budget // max(padded, 1)))
            batches.append(order[start : start + rows])
            start += rows
        return batches

    def _prefix_cache(self, prefix: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values (rotated, as attention reads them) for the shared prefix."""
        ids = torch.as_tensor([prefix], dtype=torch.long, device=self.device)
        cache = self.base(input_ids=ids, use_cache=True).cache
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _score_batch(
        self,
        rows: list[list[int]],
        prefix: list[tuple[torch.Tensor, torch.Tensor]] | None,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> np.ndarray:
        from transformers.cache_utils import DynamicCache

        lengths = [len(row) for row in rows]
        width = max(lengths)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        ids = ids.to(self.device)
        # No attention mask: the padding is on the right, where the causal mask already hides it. After a
        # prefix, transformers builds the causal mask offset by the cached length and positions start there.
        if prefix is None:
            hidden = self.base(input_ids=ids, use_cache=False).last_hidden_state
        else:
            n = len(rows)
            cache = DynamicCache(ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix])
            hidden = self.base(input_ids=ids, cache=cache, use_cache=True).last_hidden_state
        last = hidden[torch.arange(len(rows), device=self.device), torch.as_tensor(lengths, device=self.device) - 1]
        self.stats.batches += 1
        self.stats.computed_tokens += len(rows) * width
        return self._logits(last, weight, bias)

    @staticmethod
    def _logits(last: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> np.ndarray:
        logits = last.float() @ weight.T
        if bias is not None:
            logits = logits + bias
        score = logits[:, 0] - logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]
        return score.cpu().numpy()
