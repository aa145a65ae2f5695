"""bench-embed's figures: the FLOP count it divides by, and a short run's report."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

from core.bench.embed import bench_embed, encoder_flops
from core.config import DEFAULT_BI_ENCODER
from core.demo import SHARED_DATASETS
from core.embedding.bi_encoder import resolve_bi_encoder_path


@pytest.mark.parametrize("length", [7, 64, 256])
def test_encoder_flops_equal_torch_flop_counter(length):
    # Eager attention: its two products are plain matmuls, which the counter sees.
    model = AutoModel.from_pretrained(resolve_bi_encoder_path(DEFAULT_BI_ENCODER), attn_implementation="eager").eval()
    ids = torch.randint(1000, 2000, (1, length))
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    # The pooler (one h x h layer on the first token) is not part of a sentence embedding.
    pooler = 2 * model.config.hidden_size**2
    assert encoder_flops(model.config, [length]) == counter.get_total_flops() - pooler


def test_a_short_run_reports_consistent_figures():
    report = bench_embed(SHARED_DATASETS / "medline", docs=12, backend="openvino", rounds=2)
    assert report["docs"] == 12 and "OpenVINO" in report["engine"]["path"]
    assert report["rounds"] == 2 and len(report["baseline"]["seconds"]) == len(report["engine"]["seconds"]) == 2
    ratios = report["speedup_per_round"]
    assert ratios == [b / e for b, e in zip(report["baseline"]["seconds"], report["engine"]["seconds"])]
    assert report["speedup"] == pytest.approx(statistics.median(ratios))  # not a ratio of the sides' medians
    # The docs/s are each side's median pass; the first pass is timed apart from the rounds.
    for side in ("baseline", "engine"):
        assert report[side]["docs_per_s"] == pytest.approx(12 / statistics.median(report[side]["seconds"]))
    assert report["engine"]["first_pass_seconds"] > 0
    assert report["mean_cosine_to_fp32"] >= 0.999 and report["min_cosine_to_fp32"] <= report["mean_cosine_to_fp32"]
    compute = report["compute"]
    assert 12 * 20 < compute["tokens"] <= 12 * 256  # abstracts, cut at the model's 256-token window
    # fp32 work cannot outrun the CPU's fp32 matmul peak by much (the peak is a best-of, the run is not).
    assert 0 < compute["baseline_gflop_per_s"] < 1.5 * compute["matmul_peak_gflop_per_s"]["float32"]
