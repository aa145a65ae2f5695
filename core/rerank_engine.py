"""A fast scoring engine for causal-LM rerankers such as zerank-2, on the CrossEncoder's own pieces.

zerank-2's score is the logit of the "Yes" token at the last prompt token. ``CrossEncoder.predict``
gets it by running the whole causal LM on fixed-size, left-padded batches and projecting the last
hidden state onto the full 151k-token vocabulary. This engine computes the same number with less work:

- The token ids are the CrossEncoder's own: ``CrossEncoder.preprocess`` (its tokenizer, its chat
  template with the generation prompt, its truncation and suffix restore) renders every pair, and only
  the padding it adds is stripped. So the engine feeds the model exactly the tokens ``predict`` does.
- Pairs are sorted by token length and packed into batches by a token budget (rows x padded length <=
  budget) rather than a fixed row count: short pairs go many to a batch, long ones few, and every batch
  does about the same amount of work.
- Batches are right-padded and run through the base model (``model.model``), not the causal LM, with
  no attention mask: under a causal mask a real token never sees the padding after it, so no mask is
  needed and SDPA takes its ``is_causal`` path (its flash kernel on a GPU). Positions start at 0 in every
  row, as in an unpadded forward.
- The score is one dot product, the last real token's hidden state with the "Yes" row of the LM head
  (minus the "No" row for a two-token head), in float32; the vocabulary is never projected.

Scores agree with ``predict`` to float rounding (1e-5 in float32) and do not depend on how the pairs
are batched. Models the engine cannot score exactly (no text-generation Transformer + ``LogitScore``
pair, a head that scales or soft-caps its logits) are reported by ``unsupported_reason`` so the caller
can fall back to ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Decoder families whose causal-LM head is exactly ``lm_head(last_hidden_state)``: no logit scale, no
# soft-capping, no final-layer tricks. Others fall back to ``predict``.
PLAIN_HEAD_MODEL_TYPES = {"qwen3", "qwen2", "llama", "mistral"}

# Tokens (rows x padded length) per forward pass. On a GPU bigger batches keep the matrix units busy up to
# tens of thousands of tokens; on a CPU the matmuls are efficient from a few hundred rows on and larger
# batches only add padding and memory.
DEFAULT_TOKEN_BUDGET = {"cuda": 16384, "cpu": 4096}
MAX_ROWS = 512
TOKENIZE_CHUNK = 64


def unsupported_reason(cross_encoder) -> str | None:
    """Why the engine cannot score this CrossEncoder exactly, or None when it can."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore

    modules = list(cross_encoder)
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
    real_tokens: int = 0
    padded_tokens: int = 0  # rows x padded length, summed over batches


class RerankEngine:
    """Scores (query, document) pairs with a loaded causal-LM CrossEncoder, as ``predict`` would."""

    def __init__(self, cross_encoder, token_budget: int | None = None, max_rows: int = MAX_ROWS):
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
        device_type = self.device.type
        self.token_budget = token_budget or DEFAULT_TOKEN_BUDGET.get(device_type, DEFAULT_TOKEN_BUDGET["cpu"])
        self.max_rows = max_rows
        self.pad_id = transformer.tokenizer.pad_token_id or 0
        self.stats = EngineStats()

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
        prompt = None
        if hasattr(self.cross_encoder, "_resolve_prompt"):
            prompt = self.cross_encoder._resolve_prompt(None, None)
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
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        return self.score_token_ids(self.tokenize(pairs))

    @torch.inference_mode()
    def score_token_ids(self, rows: list[list[int]]) -> np.ndarray:
        """Scores of already tokenized rows (each the full templated sequence)."""
        scores = np.zeros(len(rows), dtype=np.float32)
        weight, bias = self._head_rows()
        weight = weight.to(self.device)
        bias = bias.to(self.device) if bias is not None else None
        for batch in self.batches([len(row) for row in rows]):
            scores[batch] = self._score_batch([rows[i] for i in batch], weight, bias)
        self.stats.pairs += len(rows)
        return scores

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

    def _score_batch(self, rows: list[list[int]], weight: torch.Tensor, bias: torch.Tensor | None) -> np.ndarray:
        lengths = [len(row) for row in rows]
        width = max(lengths)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        ids = ids.to(self.device)
        # No attention mask: the padding is on the right, where the causal mask already hides it.
        hidden = self.base(input_ids=ids, use_cache=False).last_hidden_state
        last = hidden[torch.arange(len(rows), device=self.device), torch.as_tensor(lengths, device=self.device) - 1]
        self.stats.batches += 1
        self.stats.real_tokens += sum(lengths)
        self.stats.padded_tokens += len(rows) * width
        return self._logits(last, weight, bias)

    @staticmethod
    def _logits(last: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> np.ndarray:
        logits = last.float() @ weight.T
        if bias is not None:
            logits = logits + bias
        score = logits[:, 0] - logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]
        return score.cpu().numpy()
