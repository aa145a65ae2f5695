"""Numbers as pages show them: parameter counts and durations."""

from __future__ import annotations

import math

from core.rerank.known_models import format_params

__all__ = ["format_params", "format_seconds"]


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"
    return f"{math.floor(seconds / 60)} min {seconds % 60:.0f} s"
