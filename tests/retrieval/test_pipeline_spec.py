"""A pipeline's short form: written and read back without loss; saved pipelines under hostile names."""

from __future__ import annotations

import json
import random

import pytest

from core.retrieval.pipeline import FirstStage, Pipeline
from core.retrieval.pipeline_spec import PipelineSpecError, PipelineStore, parse_spec, resolve_pipeline, spec_of

ZERANK = "zeroentropy/zerank-2-reranker"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("dense", Pipeline()),
        ("bm25", Pipeline(FirstStage("bm25"))),
        ("hybrid:rrf", Pipeline(FirstStage("hybrid", "rrf"))),
        ("hybrid:weighted:0.3", Pipeline(FirstStage("hybrid", "weighted", 0.3))),
        ("hybrid:weighted", Pipeline(FirstStage("hybrid", "weighted", 0.5))),
        (f"bm25+{ZERANK}@50", Pipeline(FirstStage("bm25"), ZERANK, 50)),
        (f"dense+{ZERANK}", Pipeline(reranker=ZERANK, rerank_depth=20)),
        (
            f"dense+{ZERANK}@20|Prefer statutes over commentary.",
            Pipeline(FirstStage(), ZERANK, 20, "Prefer statutes over commentary."),
        ),
        ("dense+/models/my@reranker@8", Pipeline(reranker="/models/my@reranker", rerank_depth=8)),
        ("dense|a | b + c @ 3", Pipeline(instruction="a | b + c @ 3")),
    ],
)
def test_the_documented_forms_parse(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("sparse", "the first stage must be"),
        ("hybrid:max", "the first stage must be"),
        ("hybrid:weighted:1.5", r"in \[0, 1\]"),
        ("hybrid:weighted:lots", "must be a number"),
        ("dense+", "no reranker"),
        (f"dense+{ZERANK}@many", "whole number"),
        (f"dense+{ZERANK}@-1", "0 to"),
    ],
)
def test_a_bad_form_says_what_is_wrong(spec, problem):
    with pytest.raises(PipelineSpecError, match=problem) as error:
        parse_spec(spec)
    assert repr(spec) in str(error.value)


def test_every_pipeline_reads_back_from_its_short_form():
    rng = random.Random(7)
    texts = ["", "Prefer statutes.", "a|b", "  spaced  ", "line\nbreak", "<b>x</b> ' \" \\", "ünïcödé 🙂"]
    for _ in range(2000):
        mode = rng.choice(["dense", "bm25", "hybrid"])
        fusion = rng.choice(["rrf", "weighted"])
        # RRF reads ranks only: a weight given to it is not part of the pipeline's short form.
        weight = round(rng.random(), rng.randint(0, 4)) if fusion == "weighted" else 0.5
        stage = FirstStage(mode, fusion, weight).normalised()
        reranker = rng.choice([None, ZERANK, "/models/r@2", "BAAI/bge-reranker-v2-m3"])
        depth = rng.randint(0, 1000) if reranker else 20
        pipeline = Pipeline(stage, reranker, depth, rng.choice(texts))
        assert parse_spec(spec_of(pipeline)) == pipeline, spec_of(pipeline)


def test_saved_pipelines_under_hostile_names(tmp_path):
    store = PipelineStore(tmp_path / "ws")
    names = ["z') OR 1=1 --", 'o\'brien "q"', "back\\slash\n#1", "<script>alert(1)</script>", "🙂"]
    for i, name in enumerate(names):
        store.save(name, Pipeline(FirstStage("hybrid", "weighted", 0.1 * i), ZERANK, 10 + i, f"instr {name}"))
    again = PipelineStore(tmp_path / "ws").all()
    assert list(again) == names
    assert again[names[2]] == Pipeline(FirstStage("hybrid", "weighted", 0.2), ZERANK, 12, f"instr {names[2]}")
    assert json.loads((tmp_path / "ws" / "pipelines.json").read_text())[names[0]].startswith("hybrid:weighted:0")
    assert store.delete(names[0]) and not store.delete(names[0])
    assert store.get(names[0]) is None
    # A saved name wins over the short form; anything else is read as a short form.
    store.save("dense", Pipeline(FirstStage("bm25")))
    assert resolve_pipeline("dense", store) == Pipeline(FirstStage("bm25"))
    assert resolve_pipeline("hybrid:rrf", store) == Pipeline(FirstStage("hybrid", "rrf"))
    with pytest.raises(PipelineSpecError, match="needs a name"):
        store.save("  ", Pipeline())


def test_a_damaged_file_is_a_clear_error(tmp_path):
    (tmp_path / "pipelines.json").write_text("{not json")
    with pytest.raises(PipelineSpecError, match="pipelines.json is not readable"):
        PipelineStore(tmp_path).all()
