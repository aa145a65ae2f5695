"""Sub-package re-exports that import a module only when one of its names is used.

``from core.rerank import Reranker`` works, and importing one small module of a package (say
``core.rerank.prompts``) does not load the whole package (torch, pymilvus) through its ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable, Callable]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps a name to its module."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
