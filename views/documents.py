"""Documents: upload and index files, see what is indexed, delete a file."""

import math

import streamlit as st

from core.config import DEFAULT_CHUNK_TOKENS
from core.demo import DEMO_CORPUS
from core.ingest.names import quoted
from core.ingest.parsing import SUPPORTED_SUFFIXES, IngestError, csv_columns, guess_text_column
from core.ingest.workspace import FileInput
from ui import resources
from ui.ingest import LAST_INGEST, load_demo, run_ingest, show_last_ingest
from ui.safe import md
from ui.sidebar import current_settings

settings = current_settings()

# The page draws at once; indexing, and the list of indexed files, wait for the workspace if it is loading.
st.title("Documents")

with st.expander("Chunking", expanded=False):
    size = st.slider(
        "Chunk size (bi-encoder tokens, [CLS]/[SEP] included)",
        32,
        1024,
        min(settings.chunk_tokens, 1024),
        step=16,
        help=f"Counted in {md(settings.bi_encoder)}'s tokens; the default {DEFAULT_CHUNK_TOKENS} fits its window "
        "(a warning below says when a size does not).",
    )
    overlap = st.slider("Overlap (tokens)", 0, min(256, size - 1), min(settings.chunk_overlap, size - 1), step=8)
    window_warning = st.empty()  # filled once the bi-encoder has loaded (its window is known then)

uploads = st.file_uploader(
    "Upload files",
    type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES],
    accept_multiple_files=True,
    max_upload_size=max(1, math.ceil(settings.max_file_mb)),
    help="PDF (text per page), Word .docx, HTML (visible text), Markdown, plain text, CSV (pick the text column), "
    "JSON/JSONL (BEIR rows with _id, title, text)",
)
server_limit = st.get_option("server.maxUploadSize")
if settings.max_file_mb > server_limit:
    st.caption(
        f"RERANK_MAX_FILE_MB is {settings.max_file_mb:g} but Streamlit's server.maxUploadSize is {server_limit}: "
        f"uploads over {server_limit} MB are refused. Set STREAMLIT_SERVER_MAX_UPLOAD_SIZE to match."
    )

csv_choice: dict[str, str | None] = {}
for number, upload in enumerate(uploads or []):
    if upload.name.lower().endswith(".csv"):
        try:
            columns = csv_columns(upload.name, upload.getvalue())
        except IngestError as exc:
            st.error(md(exc))
            continue
        csv_choice[upload.name] = st.selectbox(
            f"Text column of {md(upload.name)}",
            columns,
            index=columns.index(guess_text_column(columns)),
            key=f"csv_column_{number}_{upload.name}",
        )

col_index, col_demo = st.columns([1, 1])
index_clicked = col_index.button(f"Index {len(uploads or [])} file(s)", type="primary", disabled=not uploads)
demo_clicked = col_demo.button("Load the demo corpus", help=f"Index data/demo ({DEMO_CORPUS})")

options = {"chunk_tokens": size, "chunk_overlap": overlap}
if index_clicked:
    inputs = [FileInput(u.name, u.getvalue(), csv_choice.get(u.name)) for u in uploads]
    workspace = resources.workspace(settings)
    run_ingest(lambda progress: workspace.ingest(inputs, progress, **options))
elif demo_clicked:
    load_demo(resources.workspace(settings), **options)
show_last_ingest()


opened = resources.opened(settings)
if opened is not None and size > opened.encoder.max_seq_length:
    encoder, window = opened.encoder, opened.encoder.max_seq_length
    window_warning.warning(
        f"Chunks of up to {size} tokens are longer than the {window}-token window of {md(encoder.model_id)}: "
        f"the bi-encoder will embed only the first {window} tokens of each chunk (the reranker still sees all of it)."
    )


def indexed_files(workspace) -> None:
    import pandas as pd  # here: ~0.4 s to import, and the page draws before the workspace is open

    files = workspace.files()
    if not files:
        st.info("Nothing indexed yet: upload files above or load the demo corpus.")
        return
    table = pd.DataFrame(
        [
            {
                "file": f.source,
                "documents": f.documents,
                "chunks": f.chunks,
                "size (KiB)": round(f.size_bytes / 1024, 1),
                "indexed (UTC)": f.indexed_at.replace("T", " ").removesuffix("+00:00"),
                "embedded with": f.embedded_with,
            }
            for f in files
        ]
    )
    st.dataframe(table, hide_index=True)
    st.caption(f"{len(files)} files · {sum(f.chunks for f in files)} chunks in {md(workspace.store.uri)}")
    runtimes = sorted({f.embedded_with for f in files})
    if len(runtimes) > 1:
        st.caption(
            f"The index holds vectors from {len(runtimes)} embedding runtimes ({md(', '.join(runtimes))}); they agree "
            "to a cosine of about 0.999 or better. Upload a file again to re-embed it with the current runtime."
        )
    doomed = st.selectbox(
        "Delete a file from the index", [f.source for f in files], index=None, placeholder="Choose a file"
    )
    if st.button("Delete", disabled=doomed is None):
        try:
            removed = workspace.delete(doomed)
        except Exception as exc:  # e.g. a Milvus server that stopped answering
            st.error(
                f"{md(quoted(doomed))} could not be deleted now ({type(exc).__name__}: {md(exc)}); the deletion "
                "finishes the next time the index is opened or written",
                icon="⚠️",
            )
        else:
            st.session_state.pop(LAST_INGEST, None)
            st.session_state["deleted"] = f"Deleted {md(quoted(doomed))} ({removed} chunks)."
            st.rerun()


st.subheader("Indexed files")
resources.when_open(settings, indexed_files, "The list of indexed files appears when it is open.")
if "deleted" in st.session_state:
    st.success(st.session_state.pop("deleted"))
