"""The sidebar every page shows: models, device and dtype, and what the reranker is."""

from __future__ import annotations

import streamlit as st

from core.config import EMBED_BACKENDS, Settings
from core.rerank.known_models import KNOWN_MODELS
from ui.format import format_params
from ui.safe import md

DEVICES = ["auto", "cpu", "cuda", "mps"]
DTYPES = ["auto", "float32", "bfloat16", "float16"]
EMBED_BACKEND_HELP = (
    "How the bi-encoder runs on a CPU. auto: OpenVINO, in bf16 where the CPU has native bf16, else in f32. "
    "openvino-int8: int8 weights and activations, about 1.2x faster than bf16 at a cosine of 0.9992 to "
    "fp32, but rankings move a little (medline NDCG@10 +0.007). torch: sentence-transformers at the dtype "
    "above. Each runtime caches its own vectors, so switching re-embeds what you upload next."
)
NO_RERANKER = "none"


def settings_sidebar() -> Settings:
    """Render the settings (defaults from the environment, see README) and keep them for the pages."""
    try:
        base = Settings.from_env()
    except ValueError as exc:  # e.g. RERANK_CHUNK_TOKENS=abc
        st.sidebar.error(f"A setting in the environment is invalid ({md(exc)}); using the defaults.")
        base = Settings.restrictions_from_env()
    devices = DEVICES if base.device in DEVICES else [base.device, *DEVICES]  # e.g. RERANK_DEVICE=cuda:1
    dtypes = DTYPES if base.dtype in DTYPES else [base.dtype, *DTYPES]  # e.g. RERANK_DTYPE=bf16
    backends = list(EMBED_BACKENDS) if base.embed_backend in EMBED_BACKENDS else [base.embed_backend, *EMBED_BACKENDS]
    with st.sidebar:
        st.header("Models")
        bi_encoder = _model_choice(
            "Bi-encoder", base.bi_encoder, base.allowed_bi_encoders, "bi_encoder_id",
            "sentence-transformers model id or local path",
        )  # fmt: skip
        reranker = _model_choice(
            "Reranker", base.reranker, base.allowed_rerankers and (*base.allowed_rerankers, NO_RERANKER), "reranker_id",
            "CrossEncoder id or local path; 'none' for the bi-encoder alone",
        )  # fmt: skip
        device = st.selectbox("Device", devices, devices.index(base.device), key="device")
        dtype = st.selectbox(
            "Dtype",
            dtypes,
            dtypes.index(base.dtype),
            key="dtype",
            help="auto: bf16 where supported, fp16 on other GPUs, fp32 on CPU",
        )
        embed_backend = st.selectbox(
            "Embedding runtime",
            backends,
            backends.index(base.embed_backend),
            key="embed_backend",
            help=EMBED_BACKEND_HELP,
        )
        known = KNOWN_MODELS.get(reranker.strip())
        if known:
            st.caption(
                f"**{md(reranker)}**: {format_params(known.params)} parameters; {known.note}.  \n"
                f"Licence: {md(known.license)}."
            )
        st.caption(f"Workspace: {md(base.workspace)}  \nIndex: {md(base.resolved_milvus_uri)}")
    settings = base.with_(
        bi_encoder=bi_encoder.strip() or base.bi_encoder,
        reranker=reranker.strip() or NO_RERANKER,
        device=device,
        dtype=dtype,
        embed_backend=embed_backend,
    )
    st.session_state["settings"] = settings
    return settings


def _model_choice(label: str, default: str, allowed: tuple[str, ...], key: str, help_text: str) -> str:
    """A free text box, or on a deployment with an allow-list, a choice among the allowed models only."""
    if not allowed:
        return st.text_input(label, default, key=key, help=help_text)
    options = list(dict.fromkeys(allowed))
    return st.selectbox(
        label,
        options,
        index=options.index(default) if default in options else 0,
        key=key,
        help="This deployment allows only these models (RERANK_ALLOWED_BI_ENCODERS / RERANK_ALLOWED_RERANKERS).",
    )


def current_settings() -> Settings:
    """The settings the sidebar rendered in this run (app.py renders it before any page)."""
    return st.session_state.get("settings") or Settings()


def reranker_enabled(settings: Settings) -> bool:
    return settings.reranker.lower() != NO_RERANKER
