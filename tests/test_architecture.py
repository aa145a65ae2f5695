"""The layout the README describes, held: imports run one way, down; small modules and functions.

Read from the source with ``ast`` (every import, at module level or inside a function), so a lazy import
cannot slip past.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GROUND = {
    "core.chunks", "core.errors", "core.config", "core.devices", "core.locking", "core.demo", "core.lazy_exports",
    "core.concurrency", "core.concurrency.turns", "core.concurrency.background", "core.concurrency.model_loads",
}  # fmt: skip
PACKAGES = ("ingest", "embedding", "index", "retrieval", "rerank", "evaluation", "experiments", "judging", "bench")
# What each package may import from the others (the ground floor is open to all).
ALLOWED = {
    "embedding": set(),
    "index": set(),
    "rerank": set(),
    "retrieval": {"embedding", "index", "rerank"},
    "evaluation": {"embedding", "index", "rerank", "retrieval"},
    "experiments": {"embedding", "index", "rerank", "retrieval", "evaluation"},
    "judging": {"rerank", "evaluation"},
    "ingest": {"embedding", "index"},
    "bench": {"embedding", "rerank", "ingest"},
}


def _sources(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    return sorted(files + ([ROOT / "app.py"] if "views" in folders else []))


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "core" and len(parts) > 2 and parts[1] in PACKAGES else None


def test_imports_run_down_the_floors():
    wrong = []
    for path in _sources("core"):
        module = _module(path)
        own = _package(module)
        for imported in _imports(path):
            if imported.split(".")[0] in ("ui", "views", "streamlit", "plotly"):
                wrong.append(f"{module} imports {imported}: presentation lives in ui/")
            if not imported.startswith("core."):
                continue
            target = _package(imported)
            if module in GROUND and imported not in GROUND:
                wrong.append(f"{module} (ground floor) imports {imported}")
            if own and target and target != own and target not in ALLOWED[own]:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_runtime_code_never_imports_the_benchmarks():
    # The CLI hands its bench commands over to core.bench; the old entry point core.bench_rerank stays
    # for ../shared/gpu/bench.sh.
    allowed = {"core.cli", "core.bench_rerank"}
    wrong = [
        f"{_module(path)} imports {imported}"
        for path in _sources("core", "ui", "views")
        if _package(_module(path)) != "bench" and _module(path) not in allowed
        for imported in _imports(path)
        if imported == "core.bench" or imported.startswith("core.bench.")
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_over_400_lines_and_no_function_over_60():
    long = []
    for path in _sources("core", "ui", "views"):
        source = path.read_text()
        if len(source.splitlines()) > 400:
            long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_re_exports_its_public_names(package):
    module = importlib.import_module(f"core.{package}")
    assert module.__all__ and module.__doc__
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_no_type_sniffing_of_rerankers_or_stores():
    """Callers use the declared interfaces (core.rerank.base.Reranker, core.index.store.VectorStore)."""
    sniffing = []
    for path in _sources("core", "ui", "views"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            probed = re.search(r"\b(?:hasattr|getattr)\(\s*([\w.]+)", line)
            if probed and ("hasattr(" in line or re.search(r"reranker|store", probed.group(1))):
                sniffing.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not sniffing, "\n".join(sniffing)
