"""Which probability scale a reranker's logits get, ``sigmoid(logit / temperature)``, and why.

zerank-2's "Yes" logit is calibrated as ``sigmoid(logit / 5)``; a classifier's one logit as
``sigmoid(logit)``. The scale follows the model's own files, never its id or folder name: a copy of
zerank-2 in ``/models/reranker`` is still zerank-2. A served model has no files here, so its served name
is the only evidence, and the reason says so. ``RERANK_PROB_TEMPERATURE`` overrides either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ZERANK_TEMPERATURE = 5.0
OVERRIDE = "RERANK_PROB_TEMPERATURE"
# zerank-2's backbone: a "Yes" logit read from any other family is not evidence of zerank's calibration.
ZERANK_MODEL_TYPES = ("qwen3",)


@dataclass(frozen=True)
class Calibration:
    temperature: float
    reason: str  # how the scale was decided, for the UI and the JSON

    @property
    def formula(self) -> str:
        scale = f"logit / {self.temperature:g}" if self.temperature != 1 else "logit"
        return f"sigmoid({scale})"

    def to_json(self) -> dict:
        return {"formula": self.formula, "temperature": self.temperature, "reason": self.reason}


def overridden(temperature: float) -> Calibration:
    return Calibration(float(temperature), f"set by {OVERRIDE}")


def calibration_of_model(model, card: Path | None, override: float | None = None) -> Calibration:
    """The scale of a loaded CrossEncoder, from its scoring head, its backbone and its model card."""
    if override is not None:
        return overridden(override)
    head = _single_yes_head(model)
    if head is None:
        return Calibration(1.0, 'a one-logit reranker without zerank\'s "Yes" head: the usual sigmoid(logit)')
    model_type = _model_type(model)
    card = _card_names_zerank(card)
    if model_type in ZERANK_MODEL_TYPES:
        evidence = f'its scoring head (the "Yes" logit of a {model_type} causal LM, as zerank-2 scores)'
        if card:
            evidence += " and its model card"
        return Calibration(ZERANK_TEMPERATURE, f"zerank-2 calibration, detected from {evidence}")
    if card:
        return Calibration(ZERANK_TEMPERATURE, 'zerank-2 calibration, detected from its model card and "Yes" head')
    return Calibration(1.0, f'a "Yes" logit of a {model_type} model, not zerank-2\'s backbone: sigmoid(logit)')


def calibration_of_served(served_model: str, override: float | None = None) -> Calibration:
    """A served model's scale: its files are on the server, so only its served name can tell."""
    if override is not None:
        return overridden(override)
    if "zerank" in served_model.lower():
        return Calibration(ZERANK_TEMPERATURE, "zerank-2 calibration, from the served model's name")
    return Calibration(1.0, f"the served model's name does not say zerank: sigmoid(logit) (set {OVERRIDE})")


def _single_yes_head(model):
    """The LogitScore module reading one token that the model's tokenizer spells "Yes", or None."""
    from sentence_transformers.cross_encoder.modules import LogitScore

    try:
        modules = list(model)
    except TypeError:
        return None
    head = next((m for m in modules if isinstance(m, LogitScore)), None)
    if head is None or head.false_token_id is not None:
        return None
    try:
        token = modules[0].tokenizer.convert_ids_to_tokens(head.true_token_id)
    except AttributeError:  # no tokenizer to read the token with
        return None
    return head if token in ("Yes", "ĠYes", "▁Yes") else None


def _model_type(model) -> str | None:
    try:
        return list(model)[0].model.config.model_type
    except AttributeError:
        return None


def _card_names_zerank(card: Path | None) -> bool:
    """Whether the model card on disk (README.md) names zerank or ZeroEntropy."""
    if card is None or not card.is_file():
        return False
    return re.search(r"zerank|zeroentropy", card.read_text(errors="ignore")[:20_000], re.IGNORECASE) is not None
