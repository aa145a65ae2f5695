"""Past evaluations saved as JSON in the workspace, for comparing runs on the same dataset."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from core.evaluation.report import Evaluation


class EvaluationStore:
    """Past evaluations saved as JSON in the workspace, for comparing runs on the same dataset."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def save(self, evaluation: Evaluation) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = evaluation.created_at.replace(":", "").replace("-", "").replace("+0000", "Z")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", evaluation.dataset)
        path = self.folder / f"{stamp}-{name}-{uuid.uuid4().hex[:6]}.json"
        # Written aside then renamed: a run stopped mid-write never leaves half a file to list.
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(evaluation.to_json()), encoding="utf-8")
        os.replace(partial, path)
        return path

    def list(self) -> list[Path]:
        return sorted(self.folder.glob("*.json"), reverse=True) if self.folder.is_dir() else []

    def load(self, path: Path) -> Evaluation:
        """Raises ValueError for a file that is not a saved evaluation (damaged, or from another version)."""
        try:
            return Evaluation.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"{Path(path).name} is not a readable evaluation ({type(exc).__name__}: {exc})") from exc
