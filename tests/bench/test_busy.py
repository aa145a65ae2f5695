"""The fixed CPU load of ``bench-rerank --busy``: real processes that burn CPU, and that go away after."""

from __future__ import annotations

import json
import os
import time

from core.bench.busy import busy_load


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_each_busy_process_keeps_one_core_busy_then_is_gone():
    with busy_load(2) as pids:
        assert len(pids) == 2
        before = [_cpu_seconds(pid) for pid in pids]
        time.sleep(1.0)
        used = [_cpu_seconds(pid) - b for pid, b in zip(pids, before)]
    assert all(0.3 < u < 1.3 for u in used), used  # about one core each (less where the machine is shared)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]


def test_bench_rerank_reports_the_load_it_ran_beside(tmp_path, capsys):
    from core.cli import main

    args = ["bench-rerank", "--config", "tiny", "--device", "cpu", "--pairs", "4", "--tokens", "48", "--repeats", "1"]
    assert main(args + ["--busy", "1", "--json", "--model-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["busy_processes"] == 1 and report["engine"]["pairs_per_s"] > 0 and report["speedup"] > 0
