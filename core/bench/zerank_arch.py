"""Builds rerankers with zerank-2's architecture and on-disk layout, at any size, with random weights.

zerank-2 is a Qwen3ForCausalLM whose relevance score is the logit of the "Yes" token at the last
prompt position, with the query as the system turn and the document as the user turn of a chat
template that ends with the assistant prefix. The models built here have the same parts: a Qwen3
config with grouped-query attention, a byte-level BPE Qwen2 tokenizer with the ChatML special tokens
and a single "Yes" token, a chat template that maps sentence-transformers' ``query``/``document``
roles to system/user, and the sentence-transformers modules (a text-generation Transformer plus
``LogitScore``) saved in the hub layout, so they load through ``CrossEncoder(path)`` exactly as the
real model does. The tests use the ``tiny`` size; ``core.bench_rerank`` uses ``small`` (CPU) and
``zerank-2`` (the real size, 4.02B parameters, for a GPU).

The tokenizer is a toy (a few hundred byte-level tokens), not Qwen's 151k-token one: the real one is
not available offline. Token ids therefore stay small, which changes nothing about the compute; the
``small`` and ``zerank-2`` configs keep Qwen's vocabulary size of 151936 so the embedding table and the
LM head have their real shapes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Maps the pair roles sentence-transformers uses to the system/user turns zerank-2 was trained on;
# plain system/user messages render the same, which the reference computation in the tests relies on.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set role = {'query': 'system', 'document': 'user'}.get(message.role, message.role) -%}"
    "{%- if message.content is string -%}{%- set content = message.content -%}"
    "{%- else -%}{%- set content = message.content | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "<|im_start|>{{ role }}\n{{ content }}<|im_end|>\n"
    "{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Merges that make a few frequent words single tokens; "Yes" must be one token, as in Qwen's vocabulary.
MERGE_WORDS = ["Yes", "the", "and", "bond", "court", "code", "rate", "contract", "interest", "query", "system", "user"]

# Qwen3-4B, which zerank-2 is built on (its config.json): 36 layers of hidden size 2560, 32 query and 8
# key/value heads of dimension 128, an MLP of 9728, Qwen's 151936-token vocabulary, tied embeddings and
# RoPE base 1e6. That is 4.02B parameters, 3.64B of them outside the embedding table.
ZERANK_2 = {
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
}

SIZES = {
    # The test fixture: two layers, 4 query heads sharing one key/value head, the toy tokenizer's vocabulary.
    # Its initializer range is larger than Qwen's 0.02 so that logits spread over a few units and rank
    # differences are real.
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "vocab_size": None,  # the tokenizer's
        "max_position_embeddings": 2048,
        "rope_theta": None,  # transformers' default, as the fixture always had
        "tie_word_embeddings": True,
        "initializer_range": 0.3,
    },
    # The tiny model for vLLM's CPU backend, whose attention takes head dimensions of 32 and up.
    "tiny-vllm": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "vocab_size": None,
        "max_position_embeddings": 2048,
        "rope_theta": None,
        "tie_word_embeddings": True,
        "initializer_range": 0.3,
    },
    # zerank-2's shape scaled down for a CPU: the same head dimension (128), the same 4:1 query to key/value
    # head ratio, about the same MLP ratio (3.8), the real vocabulary; 8 layers of width 512.
    "small": {
        **ZERANK_2,
        "hidden_size": 512,
        "intermediate_size": 1536,
        "num_hidden_layers": 8,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
    },
    "zerank-2": ZERANK_2,
}


def _byte_level_vocab(extra_words: tuple[str, ...] = ()) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    for word in (*MERGE_WORDS, *extra_words):
        for word_form in (word, "Ġ" + word):
            current = word_form[0]
            for char in word_form[1:]:
                merged = current + char
                if merged not in vocab:
                    merges.append((current, char))
                    vocab[merged] = len(vocab)
                current = merged
    return vocab, merges


def build_tokenizer(model_max_length: int = 2048, extra_words: tuple[str, ...] = ()):
    """The toy Qwen2 tokenizer: byte-level BPE, ChatML special tokens, "Yes" as one token, zerank's template."""
    from transformers import Qwen2Tokenizer

    vocab, merges = _byte_level_vocab(extra_words)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = model_max_length
    return tokenizer


def qwen3_config(size: str, tokenizer=None):
    """The Qwen3Config of one of ``SIZES`` (``vocab_size=None`` takes the tokenizer's size)."""
    from transformers import Qwen3Config

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
    spec = dict(SIZES[size])
    rope_theta = spec.pop("rope_theta")
    if spec["vocab_size"] is None:
        if tokenizer is None:
            raise ValueError(f"the {size!r} size takes its vocabulary size from a tokenizer")
        spec["vocab_size"] = len(tokenizer)
    tokens = {"pad_token_id": None, "eos_token_id": None}
    if tokenizer is not None:
        tokens = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")}
    if rope_theta is not None:
        spec["rope_parameters"] = {"rope_type": "default", "rope_theta": rope_theta}
    return Qwen3Config(**spec, **tokens)


def count_params(config) -> tuple[int, int]:
    """(all parameters, parameters outside the embedding table) of a Qwen3ForCausalLM with ``config``."""
    h, layers = config.hidden_size, config.num_hidden_layers
    q = config.num_attention_heads * config.head_dim
    kv = config.num_key_value_heads * config.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * config.intermediate_size + 2 * h + 2 * config.head_dim
    body = layers * per_layer + h  # + the final norm
    embedding = config.vocab_size * h
    head = 0 if config.tie_word_embeddings else embedding
    return body + embedding + head, body + head


def build_zerank_like(path: Path, size: str = "tiny", seed: int = 0, dtype=None, device: str = "cpu") -> Path:
    """Write a zerank-2-architecture reranker of ``size`` with random weights to ``path`` (hub layout).

    ``dtype`` is the dtype of the saved weights (float32 unless given); zerank-2's own are bfloat16.
    ``device`` is where the random weights are drawn (a GPU draws 4B of them in a second).
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore
    from transformers import Qwen3ForCausalLM

    path = Path(path)
    # The vLLM-sized model also has "no" and "yes" as tokens, so Qwen3-Reranker's recipe (the serving
    # mistake the tests catch) can be applied to it.
    tokenizer = build_tokenizer(extra_words=("no", "yes") if size == "tiny-vllm" else ())
    config = qwen3_config(size, tokenizer)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    if dtype is not None and dtype != torch.float32:
        torch.set_default_dtype(dtype)  # a 4B model is initialised in half the memory
    try:
        with torch.device(device):
            backbone = Qwen3ForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    staging = path.parent / f"{path.name}-backbone"
    backbone.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    del backbone

    yes_id = tokenizer.convert_tokens_to_ids("Yes")
    model_kwargs = {"dtype": dtype} if dtype is not None else {}
    transformer = Transformer(
        str(staging),
        transformer_task="text-generation",
        processing_kwargs={"chat_template": {"add_generation_prompt": True}},
        model_kwargs=model_kwargs,
    )
    model = CrossEncoder(modules=[transformer, LogitScore(true_token_id=yes_id)], activation_fn=torch.nn.Identity())
    model.save_pretrained(str(path))
    shutil.rmtree(staging, ignore_errors=True)  # the hub layout holds its own copy (8 GB for zerank-2)
    return path


def build_tiny_zerank(path: Path, seed: int = 0) -> Path:
    """The test fixture: the ``tiny`` size in float32."""
    return build_zerank_like(path, "tiny", seed)
