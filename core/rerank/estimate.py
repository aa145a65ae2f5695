"""How long scoring will take, before it starts: measured throughput, else a FLOP count of this machine."""

from __future__ import annotations

import time


def estimate_seconds(
    n_pairs: int, tokens_per_pair: float, params: float, pairs_per_second: float | None = None
) -> float:
    """Rough time to score ``n_pairs``: measured throughput if we have it, else a FLOP count.

    A forward pass costs about 2 x params FLOPs per token; the machine's FLOP rate is measured once
    with a matmul the size of a transformer layer's, so the estimate tracks the hardware it runs on.
    """
    if pairs_per_second:
        return n_pairs / pairs_per_second
    return 2.0 * params * tokens_per_pair * n_pairs / _measured_flops()


_FLOPS: float | None = None


def _measured_flops() -> float:
    global _FLOPS
    if _FLOPS is None:
        import torch

        a = torch.randn(512, 2048)
        b = torch.randn(2048, 2048)
        torch.mm(a, b)  # warm-up
        started = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            torch.mm(a, b)
        seconds = max(time.perf_counter() - started, 1e-6)
        _FLOPS = 2 * 512 * 2048 * 2048 * repeats / seconds
    return _FLOPS
