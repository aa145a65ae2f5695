"""Running an ingest with a progress bar and showing each file's outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from core.demo import DEMO_CORPUS
from core.ingest.names import quoted
from ui.format import format_seconds
from ui.safe import md

if TYPE_CHECKING:  # not imported at the top: the Home page renders before the heavy libraries load
    from core.ingest.workspace import FileReport, IngestSummary, Workspace

LAST_INGEST = "last_ingest"


def progress_callback(bar):
    def update(done: int, total: int, rate: float) -> None:
        fraction = done / total if total else 1.0
        speed = f" · {rate:.0f} chunks/s · about {format_seconds((total - done) / rate)} left" if rate else ""
        bar.progress(min(fraction, 1.0), text=f"Embedding {done}/{total} chunks{speed}")

    return update


def run_ingest(start, label: str = "Reading and chunking…") -> None:
    """Run ``start(progress)`` under a progress bar and keep its summary for the next reruns.

    The Stop button works as any click does during a run: Streamlit stops the script. Chunks embedded
    until then are already in the embedding cache, so indexing the same files again resumes there.
    """
    st.button("Stop indexing", help="What is embedded so far is kept; index again to resume")
    bar = st.progress(0.0, text=label)
    st.session_state["ingest_running"] = True
    st.session_state[LAST_INGEST] = start(progress_callback(bar))
    st.session_state["ingest_running"] = False
    bar.empty()


def load_demo(workspace: Workspace, **options) -> None:
    run_ingest(lambda progress: workspace.ingest_paths([DEMO_CORPUS], progress, **options))


def show_last_ingest() -> None:
    if st.session_state.pop("ingest_running", False):
        st.warning("Indexing was stopped. The chunks embedded so far are cached: index the files again to resume.")
    elif LAST_INGEST in st.session_state:
        with st.container(border=True):
            show_summary(st.session_state[LAST_INGEST])


def show_summary(summary: IngestSummary) -> None:
    indexed = sum(r.status == "indexed" for r in summary.reports)
    unchanged = sum(r.status == "unchanged" for r in summary.reports)
    failed = sum(r.status == "error" for r in summary.reports)
    speed = f" at {summary.embedded_per_second:.0f} chunks/s" if summary.embedded else ""
    st.write(
        f"**{indexed} indexed, {unchanged} unchanged, {failed} failed** · {summary.embedded} chunks embedded"
        f"{speed} · {summary.seconds:.1f} s in all (parsing, embedding, writing)"
    )
    for report in summary.reports:
        show_report(report)


def show_report(report: FileReport) -> None:
    if report.status == "error":
        st.error(f"{md(quoted(report.source))} was not indexed: {md(report.error)}", icon="⚠️")
    elif report.status == "unchanged":
        st.info(f"{md(quoted(report.source))} is unchanged since it was indexed: nothing embedded.", icon="♻️")
    else:
        st.success(md(report.message), icon="✅")
    if report.warnings:
        with st.expander(f"{md(quoted(report.source))}: {len(report.warnings)} warning(s)"):
            st.markdown("\n".join(f"- {md(w)}" for w in report.warnings[:200]))
