"""Each Streamlit page under AppTest: upload, index, query, both columns, and the reranker-missing path."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
TIMEOUT = 180
QUERY = "When does the IPO lock-up period expire?"


def _page(page: str | None = None, **query_params) -> AppTest:
    """Open the app at its entry point, as a browser does, then go to ``page`` (pages/...)."""
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.query_params.update(query_params)
    at.run()
    return at.switch_page(page).run() if page else at


def _load_demo() -> None:
    at = _page()
    next(b for b in at.button if b.label == "Load the demo corpus").click().run()


def _texts(elements) -> list[str]:
    """What each element shows: its Markdown rendered (by markdown-it-py), tags dropped, entities decoded."""
    rendered = (MarkdownIt("commonmark").render(str(e.value)) for e in elements)
    return [html.unescape(re.sub(r"<[^>]+>", "", text)).strip() for text in rendered]


def test_home_loads_demo_corpus(app_env):
    at = _page()
    assert not at.exception
    next(b for b in at.button if b.label == "Load the demo corpus").click().run()
    assert not at.exception
    assert at.metric[0].value == "36"
    assert len(at.success) == 36


def test_every_page_draws_while_the_workspace_loads(app_env, monkeypatch):
    """No page waits for the bi-encoder and the index before it draws; what needs them says what is loading,
    and the page fills in once they are open. The test holds the process's model-load lock, which the
    bi-encoder's load takes, so the load is still running while each page draws."""
    from core.concurrency.model_loads import MODEL_LOADS
    from ui import resources

    monkeypatch.setenv("RERANK_EMBED_BACKEND", "torch")
    resources._encoders.clear()  # a bi-encoder load of its own, whatever other tests in this process loaded
    monkeypatch.setenv("RERANK_RERANKER", "none")  # a reranker's load takes the same lock (Evaluate loads it last)
    with MODEL_LOADS:
        at = _page()
        assert not at.exception
        assert any(b.label == "Load the demo corpus" for b in at.button)
        deadline = time.monotonic() + 120  # the load thread imports torch first, then waits for the lock
        while not any(t.startswith("Loading the bi-encoder") for t in _texts(at.info)):
            assert any("The pages open meanwhile" in t for t in _texts(at.info))
            assert time.monotonic() < deadline
            time.sleep(0.5)
            at.run()
        for page, drawn in (
            ("views/documents.py", lambda: at.file_uploader[0].label == "Upload files"),
            ("views/evaluate.py", lambda: any(b.label == "Run the evaluation" for b in at.button)),
            ("views/experiments.py", lambda: any(e.label == "New experiment" for e in at.expander)),
            ("views/search.py", lambda: at.text_input(key="search_query") is not None),
        ):
            at.switch_page(page).run()
            assert not at.exception, page
            assert drawn(), page
        at.switch_page("views/documents.py").run()
        assert "The list of indexed files appears when it is open." in " ".join(_texts(at.info))
    deadline = time.monotonic() + 120
    while "Nothing indexed yet" not in " ".join(_texts(at.info)) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert "Nothing indexed yet: upload files above or load the demo corpus." in _texts(at.info)
    assert any(c.value.startswith("Embedding path: cpu") for c in at.sidebar.caption)


def test_documents_page_uploads_and_reports_each_file(app_env):
    at = _page("views/documents.py")
    assert not at.exception
    at.file_uploader[0].set_value(
        [
            (
                "lockup.md",
                b"# IPO lock-up\n\nInsiders may not sell shares until the lock-up period expires, usually 180 days.",
                "text/markdown",
            ),
            ("gdpr.txt", b"A data subject access request must be answered within one month.", "text/plain"),
            ("scan.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf"),
            ("table.csv", b"id,body,title\n1,Rebase rewrites commits onto a new base.,Git\n", "text/csv"),
        ]
    )
    at.run()
    index_button = next(b for b in at.button if b.label.startswith("Index "))
    assert index_button.label == "Index 4 file(s)"
    index_button.click().run()
    assert not at.exception
    errors = _texts(at.error)
    assert len(errors) == 1 and "scan.pdf" in errors[0] and "PDF" in errors[0]
    successes = " ".join(_texts(at.success))
    for name in ("lockup.md", "gdpr.txt", "table.csv"):
        assert name in successes
    table = at.dataframe[0].value
    assert sorted(table["file"]) == ["gdpr.txt", "lockup.md", "table.csv"]

    # Re-uploading the unchanged files embeds nothing and says so.
    next(b for b in at.button if b.label.startswith("Index ")).click().run()
    assert sum("unchanged" in t for t in _texts(at.info)) == 3


def _search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="search_query").set_value(query)
    next(b for b in at.button if b.label == "Search").click()
    return at.run()


def test_search_page_shows_both_columns(app_env):
    _load_demo()
    at = _page("views/search.py")
    assert not at.exception
    _search(at, QUERY)
    assert not at.exception
    headers = _texts(at.subheader)
    assert "Dense (bi-encoder)" in headers and any(h.startswith("Reranked by") for h in headers)
    markdown = " ".join(_texts(at.markdown))
    assert "cosine" in markdown and "P(relevant)" in markdown and "logit" in markdown
    assert "finance/ipo-lock-up-period.md" in markdown
    # The tiny zerank sits in a folder whose name says nothing: the page says which scale applies and why.
    captions = " ".join(_texts(at.caption)).replace("\\", "")
    assert "P(relevant) = sigmoid(logit / 5)" in captions
    assert "zerank-2 calibration, detected from its scoring head" in captions
    assert f"For “{QUERY}” · Dense first stage, k 50." in captions  # which search the results are
    assert any("<mark>" in str(m.value) for m in at.markdown)  # query terms highlighted
    assert not at.warning
    assert {m.label for m in at.metric} >= {"Query embedding", "Vector search", "Reranking", "Total"}
    assert at.query_params["q"] == [QUERY] or at.query_params["q"] == QUERY
    assert len(at.get("plotly_chart")) == 1  # rank movement; the latency chart waits for its expander
    at.session_state["latency_history"] = True  # what opening "Latency per query" does
    at.run()
    assert len(at.get("plotly_chart")) == 2 and "Dense (bi-encoder)" in _texts(at.subheader)
    _search(at, "What is a mutex?")  # opened, it stays open search after search
    assert not at.exception and len(at.get("plotly_chart")) == 2

    # Results survive a rerun that is not a new search.
    at.run()
    assert "Dense (bi-encoder)" in _texts(at.subheader) and "P(relevant)" in " ".join(_texts(at.markdown))


def test_a_long_reranking_is_scored_in_slices_behind_a_progress_bar_with_the_same_ranking(app_env, monkeypatch):
    """A reranking expected to be long is scored a slice at a time, a progress bar updated after each
    (where a newer search can cut the run short); the ranking is that of one call."""
    import core.retrieval.search as search_module

    _load_demo()
    whole = _search(_page("views/search.py"), QUERY)
    expected = whole.session_state["result"].reranked
    assert len(expected) > search_module.MIN_SLICE
    slices: list[int | None] = []
    told: list[tuple[int, int]] = []
    score = search_module.score_candidates

    def recording(pipeline, query, texts, reranker, progress=None, slice_size=None, memo=None):
        slices.append(slice_size)

        def progress_seen(done: int, total: int) -> None:
            told.append((done, total))
            progress(done, total)  # the page's: moves its progress bar

        return score(pipeline, query, texts, reranker, progress_seen, slice_size, memo)

    monkeypatch.setattr(search_module, "score_candidates", recording)
    monkeypatch.setattr(search_module, "PROGRESS_EVERY_S", 1e-9)  # every reranking counts as long
    sliced = _search(_page("views/search.py"), "What is a mutex?")
    sliced = _search(sliced, QUERY)
    assert not sliced.exception
    assert slices and all(size == search_module.MIN_SLICE for size in slices)
    assert len(told) > 1 and told[-1][0] == told[-1][1]  # the bar moved after each slice, to the end
    got = sliced.session_state["result"].reranked
    assert [r.chunk.chunk_id for r in got] == [r.chunk.chunk_id for r in expected]
    assert [r.logit for r in got] == pytest.approx([r.logit for r in expected], abs=1e-4)
    assert not sliced.get("progress")  # the bar goes once the scores are in


def _place(at: AppTest, element) -> tuple[int, ...]:
    """Where ``element`` sits in the page: its index in each block from the main area down (Streamlit's
    delta path, by which a run overwrites the last run's elements)."""

    def within(block: Block, path: tuple[int, ...]) -> tuple[int, ...] | None:
        for index, child in block.children.items():
            if child is element:
                return (*path, index)
            found = within(child, (*path, index)) if isinstance(child, Block) else None
            if found:
                return found
        return None

    found = within(at.main, ())
    assert found is not None
    return found


def test_a_search_made_while_the_workspace_loads_draws_its_results_where_the_next_search_does(app_env):
    """While a run is in flight Streamlit shows the last run's elements (greyed) until this run writes over
    their places. A first search that waited behind a loading line and put its results one place lower than
    the next search does showed both result sets, old and new, while the next one ran (seen in chromium)."""
    from core.demo import DEMO_CORPUS
    from ui import resources

    indexed = subprocess.run(  # in another process: this one's workspace is first opened by the page
        [sys.executable, "-m", "core", "index", str(DEMO_CORPUS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert indexed.returncode == 0, indexed.stderr
    resources._encoders.clear()  # the page's first run waits for a bi-encoder load of its own
    at = _page("views/search.py", q=QUERY)
    assert not at.exception
    reranked = [h for h in at.subheader if h.value.startswith("Reranked by")]
    assert len(reranked) == 1
    where = _place(at, reranked[0])
    _search(at, "What is a mutex?")
    assert not at.exception
    reranked = [h for h in at.subheader if h.value.startswith("Reranked by")]
    assert len(reranked) == 1 and _place(at, reranked[0]) == where


def test_search_page_without_loadable_reranker_keeps_bi_encoder_column(app_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RERANK_RERANKER", "zeroentropy/zerank-2-reranker")
    _load_demo()
    at = _page("views/search.py")
    _search(at, QUERY)
    assert not at.exception
    warnings = " ".join(_texts(at.warning))
    assert "not in the local Hugging Face cache" in warnings and "first stage's ranking only" in warnings
    assert "Dense (bi-encoder)" in _texts(at.subheader)
    assert "cosine" in " ".join(_texts(at.markdown))
    assert any(b.label == "Retry loading the reranker" for b in at.button)


def test_search_page_opens_query_from_url(app_env):
    _load_demo()
    at = _page("views/search.py", q="legitimate interest under GDPR", k="15")
    assert not at.exception
    assert at.text_input(key="search_query").value == "legitimate interest under GDPR"
    assert at.number_input(key="search_k").value == 15
    assert "Dense (bi-encoder)" in _texts(at.subheader)
    assert "legal/gdpr-legitimate-interests.md" in _texts(at.markdown)[0]  # the first row: header, source line, snippet


def test_a_link_to_another_query_replaces_the_shown_results(app_env):
    _load_demo()
    at = _search(_page("views/search.py"), "force majeure clause")
    assert "legal/force-majeure-clauses.md" in _texts(at.markdown)[0]
    # Home's suggested-query links carry ?q=…; following one must show that query's results, not the old ones.
    at.query_params["q"] = QUERY
    at.switch_page("views/home.py").run()
    at.switch_page("views/search.py").run()
    assert at.text_input(key="search_query").value == QUERY
    assert "finance/ipo-lock-up-period.md" in _texts(at.markdown)[0]


def test_a_submitted_query_wins_over_a_url_that_names_another(app_env):
    _load_demo()
    at = _search(_page("views/search.py"), "force majeure clause")
    # The URL names a view that is not shown (a link's, or a search cut short by this very submit): the
    # query just typed is searched all the same, and the URL then names it.
    at.query_params["q"] = "legitimate interest under GDPR"
    _search(at, QUERY)
    assert not at.exception
    assert at.text_input(key="search_query").value == QUERY
    assert "finance/ipo-lock-up-period.md" in _texts(at.markdown)[0]
    assert at.query_params["q"] in ([QUERY], QUERY)


def test_a_search_cut_short_by_another_interaction_runs_again(app_env, monkeypatch):
    """Streamlit ends a run when another interaction arrives (a sidebar change, a second click) and starts a
    new one in which the search button is no longer pressed: the query asked for must still be searched."""
    _load_demo()
    at = _page("views/search.py")
    import streamlit as st

    from core.retrieval.first_stage import Retriever

    real, calls = Retriever.first_stage, []

    def cut_short_once(self, *args, **kwargs):  # the interruption, on demand: a real one is a race
        calls.append(args[0])
        if len(calls) == 1:
            st.rerun()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Retriever, "first_stage", cut_short_once)
    _search(at, QUERY)
    assert not at.exception
    assert calls == [QUERY, QUERY]
    assert "finance/ipo-lock-up-period.md" in _texts(at.markdown)[0]
    assert at.query_params["q"] in ([QUERY], QUERY)
    at.run()  # searched once stored: not again
    assert calls == [QUERY, QUERY]


def test_a_pending_search_runs_on_the_next_run_unless_a_newer_link_asks_for_another(app_env, monkeypatch):
    """A search whose run ended before its result was stored (here ``st.stop()``, as when a session's
    run is dropped) runs on the next run of the page; a link that arrives first wins over it."""
    _load_demo()
    import streamlit as st

    from core.retrieval.first_stage import Retriever

    real, calls = Retriever.first_stage, []

    def stopped_on(query: str):
        def first_stage(self, *args, **kwargs):
            calls.append(args[0])
            if args[0] == query and calls.count(query) == 1:
                st.stop()
            return real(self, *args, **kwargs)

        return first_stage

    monkeypatch.setattr(Retriever, "first_stage", stopped_on(QUERY))
    at = _search(_page("views/search.py"), QUERY)
    assert calls == [QUERY] and "result" not in at.session_state
    at.run()  # nothing clicked: the pending search runs
    assert calls == [QUERY, QUERY] and at.session_state["result"].query == QUERY

    calls.clear()
    monkeypatch.setattr(Retriever, "first_stage", stopped_on("force majeure clause"))
    _search(at, "force majeure clause")
    assert calls == ["force majeure clause"]
    at.query_params["q"] = "legitimate interest under GDPR"  # a link to another view, before the next run
    at.run()
    at.run()
    assert calls == ["force majeure clause", "legitimate interest under GDPR"]
    assert at.session_state["result"].query == "legitimate interest under GDPR"


def test_a_failed_search_leaves_the_url_naming_the_shown_results(app_env, monkeypatch):
    _load_demo()
    at = _search(_page("views/search.py"), "force majeure clause")
    from core.retrieval.first_stage import Retriever

    def broken(*args, **kwargs):  # a store that stops answering mid-session: no real one fails on demand
        raise ConnectionError("milvus went away")

    monkeypatch.setattr(Retriever, "first_stage", broken)
    _search(at, QUERY)
    assert "The search failed: ConnectionError" in " ".join(_texts(at.error))
    assert at.query_params["q"] in (["force majeure clause"], "force majeure clause")


def test_rerank_depth_zero_says_so(app_env):
    _load_demo()
    at = _page("views/search.py")
    at.text_input(key="search_query").set_value(QUERY)
    at.number_input(key="search_depth").set_value(0)
    next(b for b in at.button if b.label == "Search").click().run()
    assert not at.exception
    assert "rerank depth is 0" in " ".join(_texts(at.warning))
    assert "cosine" in " ".join(_texts(at.markdown))


def test_empty_index_search_is_a_message(app_env):
    at = _search(_page("views/search.py"), QUERY)
    assert not at.exception
    assert "found no candidates" in " ".join(_texts(at.warning))
    assert any("index is empty" in t for t in _texts(at.info))


def test_unloadable_bi_encoder_is_a_message_not_a_stack_trace(app_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RERANK_BI_ENCODER", "no-such-org/no-such-bi-encoder")
    at = _page("views/search.py")
    deadline = time.monotonic() + 60  # the page draws at once; the error shows when the load has failed
    while not at.error and time.monotonic() < deadline:
        assert not at.exception
        time.sleep(0.5)
        at.run()
    assert not at.exception
    errors = " ".join(_texts(at.error))
    assert "could not be opened" in errors and "no-such-org/no-such-bi-encoder" in errors


def test_slow_reranking_on_cpu_waits_for_the_user(app_env, monkeypatch):
    monkeypatch.setenv("RERANK_CONFIRM_SECONDS", "0")  # every estimate counts as slow
    _load_demo()
    at = _search(_page("views/search.py"), QUERY)
    assert not at.exception
    assert "will take about" in " ".join(_texts(at.warning))
    # Nothing is scored until the user goes ahead.
    assert not any(h.startswith("Reranked by") for h in _texts(at.subheader))
    assert "Not reranked yet." in _texts(at.info)
    go = next(b for b in at.button if b.label.startswith("Rerank 20 candidates anyway"))
    go.click().run()
    assert not at.exception
    assert "P(relevant)" in " ".join(_texts(at.markdown))


def test_labels_on_the_search_page_give_ndcg_of_both_columns(app_env):
    _load_demo()
    at = _search(_page("views/search.py"), QUERY)
    assert not any(m.label.startswith("NDCG@10") for m in at.metric)
    assert not at.get("button_group")  # the label controls wait for the toggle
    at.toggle(key="judging").set_value(True).run()
    # Label the first bi-encoder result "highly relevant" (3).
    control = next(c for c in at.get("button_group") if c.key.startswith("label_dense_"))
    control.set_value("3").run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["NDCG@10 dense"] == "1.000"
    assert labels["NDCG@10 reranked"] not in ("—", None)
    # The label is in the workspace as TREC qrels.
    qrels = (app_env / "workspace" / "labels.qrels").read_text().split()
    assert qrels[1:] == ["0", "finance/ipo-lock-up-period.md", "3"]


def test_evaluate_page_runs_the_demo_judgments(app_env):
    at = _page("views/evaluate.py")
    assert not at.exception
    at.number_input[0].set_value(10)  # k
    at.number_input[1].set_value(3)  # rerank depth
    next(b for b in at.button if b.label == "Run the evaluation").click().run()
    assert not at.exception
    table = at.dataframe[1].value  # [0] lists past runs, [1] the metrics of the one shown
    assert list(table["metric"]) == ["ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"]
    stages = {"dense", "BM25", "hybrid RRF", "hybrid weighted", "reranked"}
    assert stages | {"lift", "95% CI (bootstrap)", "p (randomization)"} <= set(table.columns)
    assert len(at.get("plotly_chart")) == 3  # per-query lift, probability histogram, reliability
    assert len(at.get("download_button")) == 6  # a TREC run per stage, and the per-query CSV


def test_evaluate_page_reranks_the_chosen_first_stage(app_env):
    at = _page("views/evaluate.py")
    at.number_input[0].set_value(10)
    at.number_input[1].set_value(3)
    at.selectbox(key="eval_first_stage").set_value("hybrid_rrf")
    next(b for b in at.button if b.label == "Run the evaluation").click().run()
    assert not at.exception
    shown = " ".join(_texts(at.markdown))
    assert "reranked first stage: hybrid (RRF, k=60)" in shown
    assert "Lift = reranked − hybrid RRF per query" in " ".join(_texts(at.caption))
    assert (app_env / "workspace" / "evaluations").is_dir()


def test_hybrid_first_stage_shows_three_columns_with_provenance(app_env):
    _load_demo()
    at = _page("views/search.py", q=QUERY, stage="hybrid", fusion="rrf")
    assert not at.exception
    headers = _texts(at.subheader)
    assert "Dense (bi-encoder)" in headers and "Hybrid" in headers
    assert any(h.startswith("Reranked by") for h in headers)
    markdown = " ".join(_texts(at.markdown))
    assert "RRF score" in markdown and "from dense #" in markdown and "BM25 #" in markdown
    assert at.radio(key="search_stage").value == "hybrid"
    assert {m.label for m in at.metric} >= {"BM25 + fusion"}

    # Two columns on request: the dense one goes, the hybrid and reranked ones stay.
    at.toggle(key="three_columns").set_value(False).run()
    headers = _texts(at.subheader)
    assert "Dense (bi-encoder)" not in headers and "Hybrid" in headers


def test_bm25_first_stage_finds_the_exact_term(app_env):
    _load_demo()
    at = _page("views/search.py", q="Article 1218", stage="bm25")
    assert not at.exception
    assert "BM25" in _texts(at.subheader)
    assert "BM25 (Milvus BM25" in " ".join(_texts(at.caption))
    result = at.session_state["result"]
    assert result.candidates is result.bm25  # BM25's list is what the reranker gets
    assert result.bm25[0].chunk.source == "legal/force-majeure-clauses.md"  # the one chunk citing Article 1218
    assert result.reranked and {r.sources.get("bm25") for r in result.reranked} >= {1}


def test_probability_threshold_greys_out_or_hides_and_says_how_many(app_env):
    _load_demo()
    at = _page("views/search.py", q=QUERY, depth="5")

    def cards() -> int:  # a column's cards are one element: a reranked card's header has " · logit "
        return sum(m.count(" · logit ") for m in _texts(at.markdown))

    assert cards() == 5
    at.slider(key="threshold").set_value(1.0).run()  # every probability is below 1
    info = " ".join(_texts(at.info))
    assert "5 of 5 candidates have P(relevant) below 1.00 and are greyed out" in info
    assert sum(m.count("below the threshold") for m in _texts(at.markdown)) == 5
    at.radio(key="below").set_value("hide").run()
    assert "are hidden" in " ".join(_texts(at.info))
    assert cards() == 0


def test_instruction_reaches_the_reranker_and_its_effect_is_shown(app_env):
    _load_demo()
    at = _page("views/search.py")
    at.text_area(key="search_instruction").set_value("Prefer statutes over commentary.")
    at.checkbox(key="search_compare").check()
    _search(at, QUERY)
    assert not at.exception
    assert at.query_params["instr"] in (["Prefer statutes over commentary."], "Prefer statutes over commentary.")
    reranked = [m for m in _texts(at.markdown) if " · logit " in m]  # the column's cards, one element
    assert reranked and all(
        m.count(" · logit ") == m.count(" · instruction ") == m.count("without, #") for m in reranked
    )
    code = " ".join(str(c.value) for c in at.code)
    assert "<instruction>\nPrefer statutes over commentary.\n</instruction>" in code


def test_sidebar_shows_the_embedding_runtime_and_switches_it(app_env, monkeypatch):
    monkeypatch.setenv("RERANK_EMBED_BACKEND", "torch")
    at = _page("views/documents.py")
    runtime = next(s for s in at.sidebar.selectbox if s.label == "Embedding runtime")
    assert runtime.value == "torch"  # the environment's choice is the default

    def embedding_path() -> str:  # shown once the workspace is open (indexing waits for it)
        return next(c.value for c in at.sidebar.caption if c.value.startswith("Embedding path"))

    def index(name: str, text: bytes) -> None:
        at.file_uploader[0].set_value([(name, text, "text/plain")]).run()
        next(b for b in at.button if b.label.startswith("Index ")).click().run()
        assert not at.exception and any(name in t for t in _texts(at.success))

    index("a.txt", b"Insiders may not sell shares until the lock-up period expires.")
    assert "OpenVINO" not in embedding_path()
    runtime.set_value("openvino-int8").run()
    assert not at.exception
    index("b.txt", b"A data subject access request must be answered within one month.")
    assert "OpenVINO int8" in embedding_path()
    runtimes = at.dataframe[0].value.set_index("file")["embedded with"]
    assert runtimes["b.txt"].startswith("openvino-int8") and not runtimes["a.txt"].startswith("openvino")
    assert any("2 embedding runtimes" in c.value for c in at.caption)


HOSTILE = "![i](http://127.0.0.1:9/evil.png) <b>b</b> :red[r] $x$ [l](http://127.0.0.1:9/evil)"


def _assert_inert(at: AppTest) -> int:
    """Every Markdown-bearing element and label renders without an image, a link, HTML or a directive."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title")
    values = [str(e.value) for kind in kinds for e in getattr(at, kind)]
    values += [str(e.label) for kind in ("expander", "selectbox", "text_input", "metric") for e in getattr(at, kind)]
    hostile = [v for v in values if "evil" in v]
    for value in hostile:
        if value.startswith("<div>"):  # escaped HTML: one raw HTML block, inside which nothing is Markdown
            assert [t.type for t in MarkdownIt("commonmark").parse(value)] == ["html_block"], value
            assert "<b>" not in value and "<img" not in value and "$x" not in value, value
            continue
        rendered = MarkdownIt("commonmark").render(value)
        assert "<img" not in rendered and "<a " not in rendered and "<b>" not in rendered, value
        assert "\\:red\\[r\\]" in value and "\\$x\\$" in value, value  # no colour directive, no maths
    return len(hostile)


def test_hostile_names_and_instructions_render_inert_on_every_page(app_env):
    at = _page("views/documents.py")
    at.file_uploader[0].set_value(
        [
            (f"{HOSTILE}.md", b"Storks migrate in flocks.", "text/markdown"),
            (f"{HOSTILE}.pdf", b"%PDF-1.4 not a pdf", "application/pdf"),
            (f"{HOSTILE}.csv", b"id,text\n", "text/csv"),
        ]
    )
    at.run()
    next(b for b in at.button if b.label.startswith("Index ")).click().run()
    assert not at.exception and _assert_inert(at) >= 3
    shown = " ".join(_texts(at.error) + _texts(at.success))
    assert HOSTILE.replace("evil", "") in shown.replace("\u2060", "").replace("evil", "")

    at = _page("views/search.py", q=f"storks {HOSTILE}", instr=HOSTILE)
    assert not at.exception and _assert_inert(at) >= 1
    assert f"Instruction given to the reranker: {HOSTILE}" in [t.replace("\u2060", "") for t in _texts(at.caption)]

    at = _page("views/evaluate.py")
    at.number_input[0].set_value(5)
    at.number_input[1].set_value(2)
    at.text_input(key="eval_instruction").set_value(HOSTILE)
    next(b for b in at.button if b.label == "Run the evaluation").click().run()
    assert not at.exception and _assert_inert(at) >= 1


def test_an_allow_list_turns_the_model_boxes_into_choices(app_env, monkeypatch, tiny_zerank_path):
    from core.config import DEFAULT_BI_ENCODER

    monkeypatch.setenv("RERANK_ALLOWED_BI_ENCODERS", DEFAULT_BI_ENCODER)
    monkeypatch.setenv("RERANK_ALLOWED_RERANKERS", f"{tiny_zerank_path}, zeroentropy/zerank-2-reranker")
    monkeypatch.setenv("RERANK_CHUNK_TOKENS", "not-a-number")  # a typo elsewhere must not lift the lists
    at = _page()
    assert not at.exception
    assert not [t for t in at.sidebar.text_input if t.key in ("bi_encoder_id", "reranker_id")]
    assert at.sidebar.selectbox(key="bi_encoder_id").options == [DEFAULT_BI_ENCODER]
    assert at.sidebar.selectbox(key="reranker_id").options == [
        str(tiny_zerank_path),
        "zeroentropy/zerank-2-reranker",
        "none",
    ]
    assert "invalid" in _texts(at.sidebar.error)[0]


def test_settings_refuse_models_outside_the_allow_lists(monkeypatch):
    from core.config import Settings

    monkeypatch.setenv("RERANK_ALLOWED_RERANKERS", "a/one , b/two")
    settings = Settings.from_env()
    assert settings.allowed_rerankers == ("a/one", "b/two") and settings.allowed_bi_encoders == ()
    assert settings.with_(reranker="b/two").reranker_refusal() is None
    assert settings.with_(reranker="none").reranker_refusal() is None
    assert "RERANK_ALLOWED_RERANKERS" in settings.with_(reranker="/etc/evil").reranker_refusal()
    assert settings.with_(bi_encoder="anything").bi_encoder_refusal() is None  # no list: any id


def test_the_sidebar_shows_the_licence_read_from_the_models_card(app_env, monkeypatch, tiny_zerank_path):
    """Neither asserted nor denied from a built-in note: the loaded model's card says."""
    import shutil

    carded = app_env / "carded-reranker"
    shutil.copytree(tiny_zerank_path, carded)
    card = (carded / "README.md").read_text()
    (carded / "README.md").write_text(card.replace("---\n", "---\nlicense: apache-2.0\n", 1))
    monkeypatch.setenv("RERANK_RERANKER", str(carded))
    _load_demo()
    at = _search(_page("views/search.py"), QUERY)
    assert not at.exception
    sidebar = " ".join(_texts(at.sidebar.caption))
    assert "licence apache-2.0" in sidebar


def test_saved_pipelines_show_as_columns_beside_the_results_and_stay_in_the_url(app_env, tiny_zerank_path):
    from core.retrieval.pipeline_spec import PipelineStore, parse_spec

    _load_demo()
    store = PipelineStore(app_env / "workspace")
    store.save("lexical", parse_spec("bm25"))
    store.save(f"reranked {HOSTILE}", parse_spec(f"hybrid:rrf+{tiny_zerank_path}@3|Prefer the statute."))
    at = _page("views/search.py", q=QUERY, col=["lexical", f"reranked {HOSTILE}", "not saved"])
    assert not at.exception
    assert at.multiselect(key="pipeline_columns").value == ["lexical", f"reranked {HOSTILE}"]
    assert at.query_params["col"] == ["lexical", f"reranked {HOSTILE}"]
    shown = _texts(at.markdown)
    assert "lexical" in shown and f"reranked {HOSTILE}".replace("evil", "") in [
        t.replace("\u2060", "").replace("evil", "") for t in shown
    ]
    assert "Instruction given to the reranker: Prefer the statute." in _texts(at.caption)
    assert sum(s.value == "BM25" for s in at.subheader) == 1 and _assert_inert(at) >= 1
    subheaders = [s.value for s in at.subheader]
    assert subheaders.count("Reranked by reranker") == 2  # the page's own reranked column and the pipeline's


def test_a_saved_pipelines_long_reranking_is_scored_in_slices_with_the_same_ranking(
    app_env, monkeypatch, tiny_zerank_path
):
    """A saved pipeline's column scores a long reranking a slice at a time behind a bar, like the page's
    own column, and ranks as one call does."""
    import core.retrieval.search as search_module
    from core.retrieval.pipeline_spec import PipelineStore, parse_spec

    _load_demo()
    saved = parse_spec(f"dense+{tiny_zerank_path}@20")
    PipelineStore(app_env / "workspace").save("dense reranked", saved)
    whole = _page("views/search.py", q=QUERY, col=["dense reranked"])
    assert not whole.exception
    # Scored afresh below, not read back from the score cache the first run filled.
    from ui import resources

    resources.score_cache.clear()
    (app_env / "workspace" / "rerank-scores.sqlite").unlink()
    slices: list[int | None] = []
    told: list[tuple[int, int]] = []
    score = search_module.score_candidates

    def recording(pipeline, query, texts, reranker, progress=None, slice_size=None, memo=None):
        if pipeline != saved:
            return score(pipeline, query, texts, reranker, progress, slice_size, memo)  # the page's own column
        slices.append(slice_size)

        def progress_seen(done: int, total: int) -> None:
            told.append((done, total))
            progress(done, total)

        return score(pipeline, query, texts, reranker, progress_seen if progress else None, slice_size, memo)

    monkeypatch.setattr(search_module, "score_candidates", recording)
    monkeypatch.setattr(search_module, "PROGRESS_EVERY_S", 1e-9)  # every reranking counts as long
    sliced = _page("views/search.py", q=QUERY, col=["dense reranked"])
    assert not sliced.exception
    assert slices and all(size == search_module.MIN_SLICE for size in slices)
    assert len(told) > 1 and told[-1] == (20, 20)  # the column's 20 candidates, the bar moved to the end
    columns = [block for block in sliced.markdown if "dense reranked" not in block.value]
    expected = [block.value for block in whole.markdown if "dense reranked" not in block.value]
    assert [block.value for block in columns] == expected  # every card and score as from one call
    assert not sliced.get("progress")
    assert (app_env / "workspace" / "rerank-scores.sqlite").exists()  # the sliced scores went in afresh


def test_labels_import_from_and_export_to_quepid_ratings(app_env):
    from core.evaluation.labels import LabelStore, query_id
    from core.experiments.interop import read_quepid_ratings, write_quepid_ratings

    ratings = f'query,docid,rating\n"bonds, {HOSTILE}",finance/bond-duration.md,3\nlock-up,"legal/a ""b"".md",1\n'
    at = _page("views/evaluate.py")
    at.radio[0].set_value("My labelled queries").run()
    at.file_uploader(key="import_qrels").set_value([("ratings.csv", ratings.encode(), "text/csv")]).run()
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception and "Imported 2 label(s)." in _texts(at.success)
    labels = LabelStore(app_env / "workspace")
    assert labels.qrels() == {
        query_id(f"bonds, {HOSTILE}"): {"finance/bond-duration.md": 3},
        query_id("lock-up"): {'legal/a "b".md': 1},
    }
    exported = next(b for b in at.get("download_button") if "Quepid" in b.proto.label)
    assert exported.proto.label == "Export labels (Quepid ratings CSV)"
    again = read_quepid_ratings("x.csv", write_quepid_ratings(labels.queries(), labels.qrels()))
    assert again.qrels == labels.qrels() and set(again.queries.values()) == {f"bonds, {HOSTILE}", "lock-up"}
