"""The sidebar every page shows: models, device and dtype, and what the reranker is."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.reranker import KNOWN_MODELS, format_params

DEVICES = ["auto", "cpu", "cuda", "mps"]
DTYPES = ["auto", "float32", "bfloat16", "float16"]
NO_RERANKER = "none"


def _persisted(name: str, default):
    """Streamlit drops a widget's state when another page is shown, so keep a copy under our own key."""
    key = f"setting_{name}"
    if key not in st.session_state:
        st.session_state[key] = default
    return key


def _remember(name: str) -> None:
    st.session_state[f"setting_{name}"] = st.session_state[f"widget_{name}"]


def _text(label: str, name: str, default: str, help: str) -> str:
    key = _persisted(name, default)
    st.session_state[f"widget_{name}"] = st.session_state[key]
    return st.text_input(label, key=f"widget_{name}", help=help, on_change=_remember, args=(name,))


def _select(label: str, name: str, options: list[str], default: str, help: str) -> str:
    key = _persisted(name, default if default in options else options[0])
    st.session_state[f"widget_{name}"] = st.session_state[key]
    return st.selectbox(label, options, key=f"widget_{name}", help=help, on_change=_remember, args=(name,))


def settings_sidebar() -> Settings:
    """Render the settings and return them; defaults come from the environment (see README)."""
    base = Settings.from_env()
    with st.sidebar:
        st.header("Models")
        bi_encoder = _text("Bi-encoder", "bi_encoder", base.bi_encoder, "sentence-transformers model id or local path")
        reranker = _text(
            "Reranker",
            "reranker",
            base.reranker,
            "CrossEncoder id or local path; 'none' for the bi-encoder alone",
        )
        device = _select("Device", "device", DEVICES, base.device, "auto: cuda, then mps, then cpu")
        dtype = _select(
            "Dtype", "dtype", DTYPES, base.dtype, "auto: bf16 where supported, fp16 on other GPUs, fp32 on CPU"
        )
        known = KNOWN_MODELS.get(reranker.strip())
        if known:
            st.caption(
                f"**{reranker}**: {format_params(known.params)} parameters; {known.note}.  \nLicence: {known.license}."
            )
        st.caption(f"Workspace: `{base.workspace}` · index: `{base.resolved_milvus_uri}`")
    return base.with_(
        bi_encoder=bi_encoder.strip(), reranker=reranker.strip() or NO_RERANKER, device=device, dtype=dtype
    )


def reranker_enabled(settings: Settings) -> bool:
    return settings.reranker.lower() != NO_RERANKER
