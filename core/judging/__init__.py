"""Assisted judging: an LLM judge on any OpenAI-compatible chat server, its cache, and its agreement with humans."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.judging",
    {
        "parse_grade": "answers",
        "DEFAULT_TEMPLATE": "prompt",
        "RATING_SCHEMA": "prompt",
        "TemplateError": "prompt",
        "render": "prompt",
        "ChatJudgeClient": "client",
        "JudgeError": "client",
        "JudgeSettings": "client",
        "Judge": "judge",
        "Judgment": "judge",
        "JudgmentCache": "judge",
        "Pair": "judge",
        "confusion": "agreement",
        "merged": "agreement",
        "shared_pairs": "agreement",
        "weighted_kappa": "agreement",
    },
)
