"""Home page: what the explorer is, the state of the index, and the demo corpus in one click.

It renders before the models and the index are loaded (they load in the background, started by app.py):
the index figures appear when the workspace is open, and the demo button waits for it behind a status.
"""

import streamlit as st

from core.demo import DEMO_CORPUS, suggested_queries
from ui import resources
from ui.ingest import load_demo, show_last_ingest
from ui.safe import md
from ui.sidebar import current_settings

settings = current_settings()

st.title("Retrieve & rerank explorer")
st.write(
    "Upload documents, search them, and compare side by side what a bi-encoder retrieves with what the "
    "**zerank-2** cross-encoder makes of those candidates: probabilities, rank movement and latency."
)

st.subheader("Try it")
if st.button(
    "Load the demo corpus",
    type="primary",
    help=f"Index the {sum(1 for _ in DEMO_CORPUS.rglob('*.md'))} documents in data/demo",
):
    load_demo(resources.workspace(settings))
show_last_ingest()


def index_figures(workspace) -> None:
    files = workspace.files()
    left, right = st.columns(2)
    left.metric("Indexed files", len(files))
    right.metric("Chunks", sum(f.chunks for f in files))


resources.when_open(settings, index_figures, "The pages open meanwhile; searching waits for it.")

st.page_link("views/documents.py", label="Upload your own documents", icon="📄")
st.page_link("views/search.py", label="Search", icon="🔎")
queries = suggested_queries()
if queries:
    st.write("Suggested queries for the demo corpus:")
    for item in queries:
        st.page_link(
            "views/search.py", label=f"{md(item['query'])} ({md(item['domain'])})", query_params={"q": item["query"]}
        )
