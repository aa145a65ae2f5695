"""Judged evaluation: datasets, metrics, the evaluation loop, its report and store, labels."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.evaluation",
    {
        "DatasetError": "datasets",
        "JudgedDataset": "datasets",
        "load_dataset": "datasets",
        "METRICS": "metrics",
        "per_query_metrics": "metrics",
        "evaluate": "evaluate",
        "maxp": "evaluate",
        "FIRST_STAGES": "report",
        "Evaluation": "report",
        "EvaluationStore": "store",
        "LabelStore": "labels",
        "ndcg_at_10": "labels",
        "expected_calibration_error": "calibration",
        "reliability": "calibration",
    },
)
