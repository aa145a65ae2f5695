"""The tiny reranker with zerank-2's architecture and on-disk layout, for offline tests.

The builder lives in ``core.bench.zerank_arch`` (the reranker benchmark builds larger sizes of the same
model with it); this module keeps the names the tests import.
"""

from __future__ import annotations

from core.bench.zerank_arch import CHAT_TEMPLATE, MERGE_WORDS, SPECIAL_TOKENS, build_tiny_zerank

__all__ = ["CHAT_TEMPLATE", "MERGE_WORDS", "SPECIAL_TOKENS", "build_tiny_zerank", "reference_scorer"]


def reference_scorer(path):
    """Independent scorer: transformers only, no sentence-transformers, no padding.

    The chat template with the query as the system turn and the document as the user turn, generation
    prompt added, and the "Yes" logit at the last token of the full causal LM.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The backbone is stored at the root of the hub layout, as zerank-2's is.
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    yes = tokenizer.convert_tokens_to_ids("Yes")

    def score(query: str, document: str) -> float:
        messages = [{"role": "system", "content": query}, {"role": "user", "content": document}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert prompt.endswith("<|im_start|>assistant\n")
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            return float(model(**ids).logits[0, -1, yes])

    return score
