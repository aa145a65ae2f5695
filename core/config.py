"""Settings for the explorer: every environment variable it reads, read here and nowhere else.

Every setting has a default that works offline on a laptop; core functions take the values, never the
environment, so the CLI, the Streamlit app and the tests share one source of configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.errors import SettingsError

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
    "rerank_engine": "RERANK_ENGINE",
    "reranker_revision": "RERANK_RERANKER_REVISION",
    "prob_temperature": "RERANK_PROB_TEMPERATURE",
    "confirm_seconds": "RERANK_CONFIRM_SECONDS",
    "dataset_roots": "RERANK_DATASETS",
}

# Settings only the reranker reads: a bad value stops the reranker, not the app.
RERANKER_ONLY = frozenset({"rerank_engine", "prob_temperature", "reranker_revision"})

# How the local reranker scores: "auto" uses core.rerank.engine where the model allows it, else predict;
# "engine" insists on the engine; "predict" is plain CrossEncoder.predict.
SCORING_ENGINES = ("auto", "engine", "predict")


def _names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of model ids or paths."""
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _folders(raw: str) -> tuple[Path, ...]:
    """Folders separated as PATH separates them (":" here, ";" on Windows)."""
    return tuple(Path(part) for part in raw.split(os.pathsep) if part)


def _engine(raw: str) -> str:
    if raw not in SCORING_ENGINES:
        raise ValueError(f"use one of {', '.join(SCORING_ENGINES)}")
    return raw


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("it must be a number above 0")
    return value


_FIELD_TYPES = {
    "workspace": Path,
    "chunk_tokens": int,
    "chunk_overlap": int,
    "max_file_mb": float,
    "allowed_bi_encoders": _names,
    "allowed_rerankers": _names,
    "rerank_engine": _engine,
    "prob_temperature": _positive,
    "confirm_seconds": float,
    "dataset_roots": _folders,
}


# A rerank server (core.rerank.http.HttpReranker): set RERANK_SERVER_URL and the app scores there.
SERVER_ENV = {
    "url": "RERANK_SERVER_URL",
    "api": "RERANK_SERVER_API",
    "api_key": "RERANK_SERVER_KEY",
    "model": "RERANK_SERVER_MODEL",
    "score_kind": "RERANK_SERVER_SCORE_KIND",
    "score_scale": "RERANK_SERVER_SCORE_SCALE",
    "preformat": "RERANK_SERVER_PREFORMAT",
    "timeout": "RERANK_SERVER_TIMEOUT",
    "max_retries": "RERANK_SERVER_RETRIES",
    "max_documents_per_request": "RERANK_SERVER_MAX_DOCS",
    "max_request_bytes": "RERANK_SERVER_MAX_BYTES",
    "concurrency": "RERANK_SERVER_CONCURRENCY",
    "extra_body": "RERANK_SERVER_EXTRA",
}
_SERVER_TYPES = {
    "score_scale": float,
    "timeout": float,
    "max_retries": int,
    "max_documents_per_request": int,
    "max_request_bytes": int,
    "concurrency": int,
}
# Values that may hold secrets: an error says which variable is wrong, never what it holds.
_SECRET = ("api_key", "extra_body")


@dataclass(frozen=True)
class ServerSettings:
    """The rerank server's settings; ``url`` empty means rerank in this process. Unset values are None."""

    url: str = field(default="", repr=False)  # may carry credentials
    api: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    score_kind: str | None = None
    score_scale: float | None = None
    preformat: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    max_documents_per_request: int | None = None
    max_request_bytes: int | None = None
    concurrency: int | None = None
    extra_body: str | None = field(default=None, repr=False)  # a JSON object, kept as text so settings hash

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ
        values: dict = {}
        for name, var in SERVER_ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                values[name] = _SERVER_TYPES.get(name, str)(raw)
            except ValueError as exc:
                shown = "(value not shown)" if name in _SECRET else repr(raw)
                raise SettingsError(f"{var}={shown} is not valid: {exc}") from None
        for name in ("api", "score_kind", "preformat"):
            if name in values:
                values[name] = values[name].lower()
        if values.get("preformat") in ("none", "off"):
            values.pop("preformat")
        if "extra_body" in values:
            try:
                body = json.loads(values["extra_body"])
            except ValueError as exc:
                raise SettingsError(f"{SERVER_ENV['extra_body']}=(value not shown) is not valid: {exc}") from None
            if not isinstance(body, dict):
                raise SettingsError(f"{SERVER_ENV['extra_body']} must be a JSON object")
        return cls(**values)

    @property
    def extra(self) -> dict:
        return json.loads(self.extra_body) if self.extra_body else {}


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
    rerank_engine: str = "auto"  # one of SCORING_ENGINES
    reranker_revision: str = ""  # a hub commit, branch or tag for the reranker; empty: the hub's default
    prob_temperature: float | None = None  # overrides the calibration detected from the reranker's files
    confirm_seconds: float = 15.0  # reranking on a CPU expected to take longer waits for the user's go-ahead
    dataset_roots: tuple[Path, ...] = ()  # more folders of judged datasets, besides the shared and uploaded ones
    server: ServerSettings = field(default_factory=ServerSettings)
    # Why a reranker-only setting (RERANK_ENGINE, RERANK_PROB_TEMPERATURE, RERANK_SERVER_*) could not be
    # used: it costs the reranker (core.rerank.factory refuses to load), never the index or the first stage.
    reranker_problem: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """The environment's settings, then ``overrides``; raises SettingsError naming a bad variable.

        A bad reranker-only variable does not raise: it is kept in ``reranker_problem``.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        problems: list[str] = []
        for name, var in ENV.items():
            raw = env.get(var, "")
            if raw:
                try:
                    values[name] = _FIELD_TYPES.get(name, str)(raw)
                except ValueError as exc:
                    if name not in RERANKER_ONLY:
                        raise SettingsError(f"{var}={raw!r} is not valid: {exc}") from None
                    problems.append(f"{var}={raw!r} is not valid: {exc}")
        try:
            values["server"] = ServerSettings.from_env(env)
        except SettingsError as exc:
            problems.append(str(exc))
        values["reranker_problem"] = "; ".join(problems)
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

    def with_(self, **changes) -> Settings:
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


# An LLM judge (core.judging): an OpenAI-compatible chat endpoint. The key comes only from here, never
# from a flag (which shells keep in their history and ps shows), and is never shown back.
JUDGE_ENV = {"url": "RERANK_JUDGE_URL", "model": "RERANK_JUDGE_MODEL", "api_key": "RERANK_JUDGE_KEY"}


def judge_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {name: env[var].strip() for name, var in JUDGE_ENV.items() if env.get(var, "").strip()}
