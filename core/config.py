"""Settings for the explorer: model ids, device, workspace, vector store URI.

Every setting has a default that works offline on a laptop and can be overridden by an environment
variable, so the CLI, the Streamlit app and the tests share one source of configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_BI_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER = "zeroentropy/zerank-2-reranker"

# How the bi-encoder runs; core.embedding.auto_backend says what auto picks.
EMBED_BACKENDS = ("auto", "torch", "openvino", "openvino-int8")

# all-MiniLM-L6-v2 reads at most 256 tokens; the chunker counts [CLS]/[SEP] too, so 256 fits exactly.
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_CHUNK_OVERLAP = 32
DEFAULT_MAX_FILE_MB = 50.0

ENV = {
    "workspace": "RERANK_WORKSPACE",
    "bi_encoder": "RERANK_BI_ENCODER",
    "reranker": "RERANK_RERANKER",
    "device": "RERANK_DEVICE",
    "dtype": "RERANK_DTYPE",
    "embed_backend": "RERANK_EMBED_BACKEND",
    "milvus_uri": "MILVUS_URI",
    "milvus_token": "MILVUS_TOKEN",
    "index_type": "RERANK_INDEX_TYPE",
    "collection": "RERANK_COLLECTION",
    "chunk_tokens": "RERANK_CHUNK_TOKENS",
    "chunk_overlap": "RERANK_CHUNK_OVERLAP",
    "max_file_mb": "RERANK_MAX_FILE_MB",
    "allowed_bi_encoders": "RERANK_ALLOWED_BI_ENCODERS",
    "allowed_rerankers": "RERANK_ALLOWED_RERANKERS",
}


def _names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of model ids or paths."""
    return tuple(name.strip() for name in raw.split(",") if name.strip())


_FIELD_TYPES = {
    "workspace": Path,
    "chunk_tokens": int,
    "chunk_overlap": int,
    "max_file_mb": float,
    "allowed_bi_encoders": _names,
    "allowed_rerankers": _names,
}


@dataclass(frozen=True)
class Settings:
    workspace: Path = Path("workspace")
    bi_encoder: str = DEFAULT_BI_ENCODER
    reranker: str = DEFAULT_RERANKER
    device: str = "auto"
    dtype: str = "auto"
    embed_backend: str = "auto"  # one of EMBED_BACKENDS
    milvus_uri: str = ""  # empty: an embedded Milvus Lite file inside the workspace
    milvus_token: str = field(default="", repr=False)
    index_type: str = ""  # empty: FLAT for Milvus Lite (exact), HNSW for a server
    collection: str = "chunks"
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    # A shared deployment lists the models its users may pick; empty lets anyone type any id or path.
    allowed_bi_encoders: tuple[str, ...] = ()
    allowed_rerankers: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        values: dict = {}
        for name, var in ENV.items():
            raw = os.environ.get(var, "")
            if raw:
                values[name] = _FIELD_TYPES.get(name, str)(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "workspace" in values:
            values["workspace"] = Path(values["workspace"])
        return cls(**values)

    @classmethod
    def restrictions_from_env(cls) -> Settings:
        """The defaults, but with the environment's allow-lists: what to run on when another setting in
        the environment is invalid (a typo elsewhere must not lift a deployment's restrictions)."""
        return cls(
            **{name: _names(os.environ.get(ENV[name], "")) for name in ("allowed_bi_encoders", "allowed_rerankers")}
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.workspace / "milvus.db")

    def bi_encoder_refusal(self) -> str | None:
        """Why the bi-encoder may not be loaded here (not on the allow-list), or None."""
        if self.allowed_bi_encoders and self.bi_encoder not in self.allowed_bi_encoders:
            return f"the bi-encoder {self.bi_encoder!r} is not in RERANK_ALLOWED_BI_ENCODERS"
        return None

    def reranker_refusal(self) -> str | None:
        """Why the reranker may not be loaded here (not on the allow-list), or None; 'none' is always allowed."""
        if self.allowed_rerankers and self.reranker.lower() != "none" and self.reranker not in self.allowed_rerankers:
            return f"the reranker {self.reranker!r} is not in RERANK_ALLOWED_RERANKERS"
        return None

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)
