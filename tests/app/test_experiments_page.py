"""The Experiments page under AppTest: three pipelines on the demo set, a snapshot by URL, a comparison,
and hostile names and queries that stay text."""

from __future__ import annotations

from tests.app.test_app_pages import HOSTILE, _assert_inert, _page, _texts

PAGE = "views/experiments.py"


def _run_three(k: int = 10, chosen=("dense", "BM25", "dense + reranker")):
    at = _page(PAGE)
    assert not at.exception
    next(b for b in at.button if b.label == "Add the example pipelines").click().run()
    at.multiselect(key="x_pipelines").set_value(list(chosen)).run()
    at.selectbox(key="x_baseline").set_value(chosen[0])
    at.number_input(key="x_k").set_value(k)
    next(b for b in at.button if b.label == "Run the experiment").click().run()
    assert not at.exception, at.exception
    return at


def test_three_pipelines_on_the_demo_judgments_give_metrics_agreement_and_a_drill_down(app_env):
    at = _run_three()
    table = at.dataframe[0].value
    assert list(table["pipeline"]) == ["dense", "BM25", "dense + reranker"]
    assert {"ndcg@10", "Δ ndcg@10", "95% CI", "p", "p (Holm)", "unjudged in top 10", "RBO (p=0.9)"} <= set(
        table.columns
    )
    assert table["p (Holm)"].iloc[1] >= table["p"].iloc[1]
    assert len(at.get("plotly_chart")) == 2  # per-query lift and disagreement
    snapshot = at.query_params["snapshot"]
    assert (app_env / "workspace" / "experiments" / f"{snapshot}.json").is_file()
    shown = " ".join(_texts(at.markdown))
    assert "dense (baseline)" in _texts(at.markdown) and "dense + reranker" in _texts(at.markdown)
    assert "P(relevant)" in shown and "was #" in shown and "grade" in shown
    assert sum(str(m.value).startswith("**#1**") for m in at.markdown) == 3  # a column per pipeline
    assert sum(str(m.value).startswith("**#") for m in at.markdown) == 30  # each column's top 10
    assert "46 queries" in " ".join(_texts(at.caption))


def test_a_snapshot_and_a_query_open_from_the_url_and_two_snapshots_compare(app_env):
    first = _run_three(chosen=("dense", "BM25", "hybrid RRF")).query_params["snapshot"]
    second = _run_three(chosen=("dense", "BM25", "hybrid weighted")).query_params["snapshot"]
    at = _page(PAGE, snapshot=first, query="q7")
    assert not at.exception
    assert at.selectbox(key="x_query").value == "q7"
    assert list(at.dataframe[0].value["pipeline"]) == ["dense", "BM25", "hybrid RRF"]
    at = _page(PAGE, snapshot=second, against=first)
    assert not at.exception
    diff = at.dataframe[-2].value
    assert list(diff["pipeline"]) == ["dense", "BM25"] and set(diff["queries changed"]) == {0}
    assert (diff["Δ ndcg@10"] == 0).all()
    at = _page(PAGE, snapshot="../../etc/passwd")
    assert not at.exception and "No snapshot" in " ".join(_texts(at.warning))


def test_hostile_pipeline_names_and_queries_render_inert(app_env):
    at = _page(PAGE)
    at.text_input(key="x_new_name").set_value(f"name {HOSTILE}")
    at.text_input(key="x_new_spec").set_value(f"bm25|{HOSTILE}").run()
    next(b for b in at.button if b.label == "Save the pipeline").click().run()
    at.text_input(key="x_new_name").set_value("plain")
    at.text_input(key="x_new_spec").set_value("dense").run()
    next(b for b in at.button if b.label == "Save the pipeline").click().run()
    at.radio(key="x_source").set_value("A query list").run()
    at.file_uploader(key="x_queries").set_value(
        [(f"{HOSTILE}.txt", f"storks {HOSTILE}\nbonds\n".encode(), "text/plain")]
    )
    at.run()
    at.multiselect(key="x_pipelines").set_value(["plain", f"name {HOSTILE}"]).run()
    at.number_input(key="x_k").set_value(5)
    next(b for b in at.button if b.label == "Run the experiment").click().run()
    assert not at.exception, at.exception
    assert _assert_inert(at) >= 2
    assert list(at.dataframe[0].value["pipeline"]) == ["plain", f"name {HOSTILE}"]
