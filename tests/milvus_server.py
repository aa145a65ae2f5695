"""Start and stop a real Milvus standalone server for the tests: the one bundled by the `milvus` wheel.

The `milvus` package (2.3.5, Linux x86_64 only) ships the Milvus standalone binary, its libraries
and a config template, all inside the wheel: nothing is downloaded at run time. Its own
``MilvusServer`` class starts the binary in our process group and changes the working directory of
the whole interpreter, so we only borrow its config rendering and binary unpacking and run the
binary ourselves:

- every port (gRPC proxy, the coordinators and nodes, the metrics/health port, and the embedded
  etcd's client and peer ports, fixed at 2379/2380 unless etcd gets a config file) is a fresh
  ephemeral port, so two test sessions on one host do not collide, and nothing touches 19530;
- data, logs and the unpacked binaries (~390 MB) live in one folder the caller owns;
- its components talk to each other over 127.0.0.1, not the machine's first network address;
- the server runs in its own session (process group), so ``stop`` kills the whole tree, and it gets
  SIGKILL from the kernel if the Python process that started it dies (PR_SET_PDEATHSIG), so even a
  killed pytest leaks no server.

The gRPC port listens on all interfaces (Milvus 2.3 has no bind address setting); clients use
127.0.0.1.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MILVUS_WHEEL_VERSION = "2.3.5"
_PR_SET_PDEATHSIG = 1


class ServerUnavailable(Exception):
    """The server binary cannot run here (no wheel for this platform, or it exits on start)."""


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    health_port: int
    folder: Path
    started_in_s: float = 0.0
    version: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        return _log_tail(self.folder, lines)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after ``timeout``."""
        if self._stopped:
            return
        self._stopped = True
        _kill_group(self.process, timeout)


def platform_problem() -> str | None:
    """Why the bundled server cannot run on this machine, or None."""
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return (
            f"the milvus {MILVUS_WHEEL_VERSION} wheel, which bundles the Milvus server binary, exists only for "
            f"Linux x86_64, not {sys.platform} {platform.machine()}"
        )
    return None


def start_server(folder: Path, timeout: float = 180.0) -> RunningServer:
    """Start a Milvus standalone server with its data in ``folder``; returns once it answers gRPC calls.

    Raises ServerUnavailable when the platform has no binary or the binary exits before it is up
    (the message carries its log tail), and TimeoutError when it runs but is not up in ``timeout``.
    """
    problem = platform_problem()
    if problem:
        raise ServerUnavailable(problem)
    try:
        import milvus
    except ImportError as exc:  # a setup error on a platform the wheel exists for: fail, do not skip
        raise RuntimeError(
            f"the milvus package is not installed ({exc}); run .venv/bin/pip install -r requirements-dev.txt"
        ) from exc

    started = time.perf_counter()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = milvus.MilvusServerConfig(data_dir=str(folder))
    port_keys = [key for key in config.configurable_items if key.endswith("_port")]
    ports = _free_ports(len(port_keys) + 2)
    config.update(**dict(zip(port_keys, ports)))
    health_port, etcd_peer_port = ports[-2:]
    config.resolve()  # writes folder/configs/milvus.yaml with our ports, data and log paths
    _keep_on_loopback(folder / "configs", int(config.get("etcd_port")), etcd_peer_port)
    milvus._initialize_data_files(str(folder))  # unpacks the .lzma binaries into folder/bin
    executable = folder / "bin" / "milvus"

    env = dict(os.environ)
    env.update(
        DEPLOY_MODE="STANDALONE",
        METRICS_PORT=str(health_port),
        MILVUS_RUN_DIR=str(folder / "run"),
        LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(executable.parent), os.environ.get("LD_LIBRARY_PATH")])),
    )
    logs = folder / "logs"
    with open(logs / "milvus-stdout.log", "wb") as stdout, open(logs / "milvus-stderr.log", "wb") as stderr:
        # cwd: the binary finds configs/milvus.yaml relative to its working directory.
        process = spawn_server([str(executable), "run", "standalone"], folder, env, stdout, stderr)
    server = RunningServer(process, int(config.get("proxy_port")), health_port, folder)
    atexit.register(server.stop)  # a backstop: the fixture's finalizer normally stops it first
    try:
        server.version = _wait_until_up(server, started, timeout)
    except BaseException:
        server.stop()
        raise
    server.started_in_s = time.perf_counter() - started
    return server


def _keep_on_loopback(configs: Path, client_port: int, peer_port: int) -> None:
    """Give the embedded etcd its own ports, and every component 127.0.0.1 as its address.

    The embedded etcd listens on 2379 and 2380 unless given a config file: a second server would
    collide. Left alone, the components reach each other on the machine's first non-loopback address,
    which a sandbox may not route, and they stall on shutdown retrying it.
    """
    etcd_config = configs / "etcd.yaml"
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    etcd_config.write_text(
        "name: milvus-test\n"
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: milvus-test={peer}\n"
    )
    milvus_yaml = configs / "milvus.yaml"
    lines = ["  ip: 127.0.0.1" if line.startswith("  ip:") else line for line in milvus_yaml.read_text().splitlines()]
    at = lines.index("etcd:") + 1
    lines[at:at] = ["  config:", f"    path: {etcd_config}"]
    milvus_yaml.write_text("\n".join(lines) + "\n")


def _wait_until_up(server: RunningServer, started: float, timeout: float) -> str:
    """Poll the health endpoint, then a real gRPC call; returns the server version."""
    from pymilvus import MilvusClient

    deadline = started + timeout
    health = f"http://127.0.0.1:{server.health_port}/healthz"
    healthy = False
    last_error: Exception | None = None
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise ServerUnavailable(
                f"the Milvus {MILVUS_WHEEL_VERSION} server binary exited with code {server.process.returncode} "
                f"before it was up; its log ends with:\n{server.log_tail()}"
            )
        try:
            if not healthy:
                with urllib.request.urlopen(health, timeout=2) as response:
                    healthy = b"OK" in response.read()
            if healthy:
                client = MilvusClient(uri=server.uri, timeout=5)
                try:
                    client.list_collections()
                    return client.get_server_version()
                finally:
                    client.close()
        except Exception as exc:  # noqa: BLE001 (urllib's OSError, or pymilvus's several types: not serving yet)
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(
        f"the Milvus server (pid {server.pid}) was not up after {timeout:.0f}s "
        f"(last error: {last_error}); its log ends with:\n{server.log_tail()}"
    )


def _kill_group(process: subprocess.Popen, timeout: float) -> None:
    pgid = process.pid  # start_new_session: the server leads its own process group
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(pgid):
            break
    process.poll()
    # Children that outlived the leader are still in the group: nothing may survive the stop.
    for _ in range(50):
        if not _group_alive(pgid):
            return
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for killpg(0); it is gone once reaped.
    return any(_pgid_of(pid) == pgid for pid in _pids())


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[2]) if fields[0] != "Z" else None  # state, ppid, pgrp; zombies need no kill


def spawn_server(command: list[str], cwd: Path, env: dict, stdout, stderr) -> subprocess.Popen:
    """A server process in its own process group (``_kill_group`` stops the whole tree), killed by the
    kernel if the test process dies first."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (pytest starts it from its main thread)
    )


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGKILL when the parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _free_ports(count: int) -> list[int]:
    """Distinct ports the OS calls free right now (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(folder: Path, lines: int) -> str:
    parts = []
    for name in ("milvus-stderr.log", "milvus-stdout.log"):
        path = folder / "logs" / name
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if text:
            parts.append(f"--- {name}\n" + "\n".join(text))
    return "\n".join(parts) or "(no log output)"
