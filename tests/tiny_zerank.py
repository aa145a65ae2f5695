"""Builds a tiny reranker with zerank-2's architecture and on-disk layout, for offline tests.

zerank-2 is a Qwen3ForCausalLM whose relevance score is the logit of the "Yes" token at the last
prompt position, with the query as the system turn and the document as the user turn of a chat
template that ends with the assistant prefix. This fixture has the same parts at toy size: a Qwen3
config with grouped-query attention (4 query heads, 1 key/value head), a byte-level BPE Qwen2
tokenizer with the ChatML special tokens and a single "Yes" token, a chat template that maps
sentence-transformers' ``query``/``document`` roles to system/user, and the sentence-transformers
modules (a text-generation Transformer plus ``LogitScore``) saved in the hub layout, so it loads
through ``CrossEncoder(path)`` exactly as the real model does.
"""

from __future__ import annotations

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


def _byte_level_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    for word in MERGE_WORDS:
        for word_form in (word, "Ġ" + word):
            current = word_form[0]
            for char in word_form[1:]:
                merged = current + char
                if merged not in vocab:
                    merges.append((current, char))
                    vocab[merged] = len(vocab)
                current = merged
    return vocab, merges


def build_tiny_zerank(path: Path, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (hub layout) and return the path."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore
    from transformers import Qwen2Tokenizer, Qwen3Config, Qwen3ForCausalLM

    vocab, merges = _byte_level_vocab()
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 2048

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=2048,
        # Larger than Qwen's 0.02 so that logits spread over a few units and rank differences are real.
        initializer_range=0.3,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    backbone = Qwen3ForCausalLM(config).eval()
    staging = path.parent / f"{path.name}-backbone"
    backbone.save_pretrained(staging)
    tokenizer.save_pretrained(staging)

    yes_id = tokenizer.convert_tokens_to_ids("Yes")
    transformer = Transformer(
        str(staging),
        transformer_task="text-generation",
        processing_kwargs={"chat_template": {"add_generation_prompt": True}},
    )
    model = CrossEncoder(modules=[transformer, LogitScore(true_token_id=yes_id)], activation_fn=torch.nn.Identity())
    model.save_pretrained(str(path))
    return path
