"""Experiments: N pipelines over a query set, judged or not; agreement, lift, snapshots and their formats."""

from core.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    "core.experiments",
    {
        "jaccard_at": "agreement",
        "new_in_top": "agreement",
        "rbo_ext": "agreement",
        "QuerySet": "query_sets",
        "QuerySetError": "query_sets",
        "read_query_file": "query_sets",
        "read_quepid_ratings": "interop",
        "trec_run": "interop",
        "write_quepid_ratings": "interop",
        "Experiment": "snapshot",
        "SnapshotError": "snapshot",
        "SnapshotStore": "snapshot",
        "compare_snapshots": "snapshot",
        "ExperimentError": "runner",
        "run_experiment": "runner",
    },
)
