"""Judge labels in eval and experiment: merged under the human's, and the figures say whose labels they used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.demo import DEMO_JUDGMENTS

ROOT = Path(__file__).resolve().parents[2]


def _eval(tmp_path, *extra) -> dict:
    env = {**os.environ, "RERANK_WORKSPACE": str(tmp_path / "ws")}
    command = [sys.executable, "-m", "core", "eval", str(DEMO_JUDGMENTS), "-k", "10", "--reranker", "none", "--json"]
    done = subprocess.run(
        command + list(extra), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_eval_merges_judge_labels_under_the_humans_and_says_so(tmp_path):
    human = _eval(tmp_path)
    judge = tmp_path / "judge.qrels"
    # q1: the judge disagrees with the human on a judged document (the human's 3 stands) and finds a new
    # relevant one (it counts); q999 is not a query of the set.
    judge.write_text("q1 0 finance/bond-duration-and-convexity.md 0\nq1 0 legal/force-majeure-clauses.md 3\nq999 0 x 3\n")
    with_judge = _eval(tmp_path, "--judge-qrels", str(judge))
    assert human["settings"]["labels"] == "human" and with_judge["settings"]["labels"] == "merged"
    assert with_judge["queries"] == human["queries"]
    assert with_judge["metrics"]["dense"]["ndcg@10"] < human["metrics"]["dense"]["ndcg@10"]  # a relevant doc more
