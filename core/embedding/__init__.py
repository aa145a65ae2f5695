"""The bi-encoder: the model, its OpenVINO path, the bundled weights and the embedding cache."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.embedding",
    {
        "BiEncoder": "bi_encoder",
        "BiEncoderLoadError": "bi_encoder",
        "auto_backend": "bi_encoder",
        "EmbeddingCache": "cache",
        "embed_with_cache": "cache",
        "BundledModelError": "bundled_model",
        "verified_bundled_model": "bundled_model",
        "OpenVinoEncoder": "openvino_encoder",
        "openvino_available": "openvino_encoder",
    },
)
