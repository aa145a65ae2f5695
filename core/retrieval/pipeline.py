"""What a search runs, as one value: a first stage, a reranker (or none), the rerank depth, an instruction.

The Search page, the CLI's ``search`` and ``eval`` and the evaluation runner all take a ``Pipeline``;
its ``name`` names runs and its URL and JSON forms name views and saved results. It holds the
reranker's id, not the loaded model: loading is the caller's business (once per process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.rerank.prompts import reranker_query
from core.retrieval.fusion import RRF_K

DEFAULT_K = 50
DEFAULT_RERANK_DEPTH = 20
MAX_DEPTH = 1000  # the most candidates a URL may ask for (k or the rerank depth)
MODES = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "weighted")


@dataclass(frozen=True)
class FirstStage:
    """Which first stage feeds the reranker; ``dense_weight`` is the dense share of a weighted fusion."""

    mode: str = "dense"
    fusion: str = "rrf"
    dense_weight: float = 0.5

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"first stage must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError(f"the dense weight must be in [0, 1], got {self.dense_weight}")

    @property
    def label(self) -> str:
        if self.mode == "dense":
            return "dense (bi-encoder)"
        if self.mode == "bm25":
            return "BM25"
        if self.fusion == "rrf":
            return f"hybrid (RRF, k={RRF_K})"
        return f"hybrid (weighted: {self.dense_weight:.2f} dense + {1 - self.dense_weight:.2f} BM25, min-max)"

    @property
    def key(self) -> str:
        """A short name for runs and metrics: dense, bm25, hybrid_rrf, hybrid_weighted."""
        return self.mode if self.mode != "hybrid" else f"hybrid_{self.fusion}"

    def to_json(self) -> dict:
        return {"mode": self.mode, "fusion": self.fusion, "dense_weight": self.dense_weight}

    @classmethod
    def from_json(cls, data: Mapping) -> FirstStage:
        return cls(data.get("mode", "dense"), data.get("fusion", "rrf"), float(data.get("dense_weight", 0.5)))

    def normalised(self) -> FirstStage:
        """The same stage with what it does not use at its default, and the weight as a URL writes it."""
        if self.mode != "hybrid":
            return FirstStage(self.mode)
        return FirstStage(self.mode, self.fusion, round(self.dense_weight, 4))


@dataclass(frozen=True)
class Pipeline:
    first_stage: FirstStage = field(default_factory=FirstStage)
    reranker: str | None = None  # the reranker's model id; None: the first stage alone
    rerank_depth: int = DEFAULT_RERANK_DEPTH  # candidates the reranker rescores
    instruction: str = ""  # read by the reranker with the query (core.rerank.prompts)

    def __post_init__(self):
        if self.rerank_depth < 0:
            raise ValueError(f"the rerank depth must be 0 or more, got {self.rerank_depth}")
        object.__setattr__(self, "instruction", self.instruction.strip())

    @property
    def reranks(self) -> bool:
        return self.reranker is not None and self.rerank_depth > 0

    def reranker_query(self, query: str) -> str:
        """The exact text the reranker reads as its query."""
        return reranker_query(query, self.instruction)

    @property
    def name(self) -> str:
        """Short and stable: ``hybrid_weighted0.7+zerank-2-reranker@20+instr1a2b3c4d``."""
        stage = self.first_stage
        name = stage.key
        if stage.mode == "hybrid" and stage.fusion == "weighted":
            name += f"{round(stage.dense_weight, 4):g}"
        if self.reranker is not None:
            name += f"+{self.reranker.rstrip('/').rsplit('/', 1)[-1]}@{self.rerank_depth}"
        if self.instruction:
            name += "+instr" + hashlib.sha256(self.instruction.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return name

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "first_stage": {**self.first_stage.to_json(), "label": self.first_stage.label},
            "reranker": self.reranker,
            "rerank_depth": self.rerank_depth,
            "instruction": self.instruction,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Pipeline:
        return cls(
            FirstStage.from_json(data.get("first_stage", {})),
            data.get("reranker"),
            int(data.get("rerank_depth", DEFAULT_RERANK_DEPTH)),
            data.get("instruction", ""),
        )

    def to_params(self) -> dict[str, str]:
        """The URL form (the reranker is the app's setting, not the link's)."""
        stage = self.first_stage.normalised()
        params = {"stage": stage.mode, "depth": str(self.rerank_depth)}
        if stage.mode == "hybrid":
            params.update(fusion=stage.fusion, w=f"{stage.dense_weight:g}")
        if self.instruction:
            params["instr"] = self.instruction
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str], reranker: str | None = None) -> Pipeline:
        """From a URL's parameters; what is missing or malformed falls back to the default, never raises."""
        mode = params.get("stage", "dense")
        mode = mode if mode in MODES else "dense"
        fusion = params.get("fusion", "rrf")
        weight = number_param(params.get("w"), 0.5, float, 0.0, 1.0)
        stage = FirstStage(mode, fusion if fusion in FUSIONS else "rrf", weight).normalised()
        depth = number_param(params.get("depth"), DEFAULT_RERANK_DEPTH, int, 0, MAX_DEPTH)
        return cls(stage, reranker, depth, params.get("instr", ""))


def number_param(raw: str | None, default, kind, low, high):
    """A URL parameter as a number in [low, high]; missing or malformed gives ``default``, never an error."""
    try:
        return max(low, min(kind(raw), high)) if raw is not None else default
    except ValueError:
        return default
