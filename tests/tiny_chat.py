"""A tiny chat model for a real vLLM: Qwen3's architecture with random weights and a byte-level BPE
tokenizer trained here, offline, on the demo corpus. Its grades mean nothing; what it is for is that
its tokenizer can spell JSON (braces, quotes, digits), so vLLM's structured output forces a valid answer.
"""

from __future__ import annotations

from pathlib import Path

from core.demo import DEMO_CORPUS

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_chat(path: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    if (path / "config.json").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    texts = [p.read_text(encoding="utf-8") for p in sorted(DEMO_CORPUS.rglob("*.md"))]
    tokenizer.train_from_iterator(texts + ['{"rating": 0}', '{"rating": 1}', '{"rating": 2}', '{"rating": 3}'], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    config = Qwen3Config(
        vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"), pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(seed)
    Qwen3ForCausalLM(config).eval().save_pretrained(path)
    return path
