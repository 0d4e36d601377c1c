"""Real Milvus processes for tests: a Milvus standalone server (PyPI's `milvus` package: the server
binary with embedded etcd and local storage) on free ports, and the Milvus Lite servers of a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

PORT_OPTIONS = (
    "proxy-port", "etcd-port", "root-coord-port", "proxy-internal-port", "query-coord-port",
    "query-node-port", "index-coord-port", "index-node-port", "data-coord-port", "data-node-port",
)  # fmt: skip


class ServerFailed(RuntimeError):
    """The server exited or did not answer in time; its log says why."""


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class MilvusServer:
    """A `milvus-server` process group on free ports, its data under root."""

    def __init__(self, executable: str, root: Path) -> None:
        self.root = root
        ports = dict(zip(PORT_OPTIONS, free_ports(len(PORT_OPTIONS)), strict=True))
        self.command = [executable, "--data", str(root / "data")]
        for name, port in ports.items():
            self.command += [f"--{name}", str(port)]
        self.uri = f"http://127.0.0.1:{ports['proxy-port']}"
        self.log = root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        """Start the server and return once a client lists its collections."""
        from pymilvus import MilvusClient

        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise ServerFailed(f"milvus-server exited with {self._process.returncode}: see {self.log}")
            try:
                client = MilvusClient(uri=self.uri, timeout=2)
                client.list_collections()
                client.close()
                return
            except Exception:  # not answering yet
                if time.monotonic() > deadline:
                    raise ServerFailed(
                        f"milvus-server did not answer within {timeout} s: see {self.log}"
                    ) from None
                time.sleep(0.5)

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP): it stops answering, connections stay open.
        Returns once the kernel shows each one stopped: a signal is delivered, not handled, on return."""
        assert self._process is not None
        group = self._process.pid
        os.killpg(group, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [stat.split(")")[-1].split()[0] for stat in _group_stats(group)]
            if states and all(state in "Tt" for state in states):
                return
            time.sleep(0.01)
        raise AssertionError("the Milvus server's processes did not all stop")

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process group (the wrapper and the server it runs) and wait until every member
        has exited: the server locks a fixed pid file that the next one needs. Its graceful stop
        takes over 30 s, so it is killed after `grace`, as a crash would."""
        if self._process is None:
            return
        process, self._process = self._process, None
        pgid = process.pid
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while True:
            try:
                os.killpg(pgid, signal.SIGKILL if time.monotonic() > deadline else 0)
            except ProcessLookupError:  # no member left
                return
            process.poll()  # reap the wrapper, our child: a zombie would stay in the group
            time.sleep(0.2)


def milvus_lite_pids(db_file: Path) -> list[int]:
    """Return the pids of Milvus Lite server processes serving db_file (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.endswith(b"/milvus") for arg in argv[:1]) and str(db_file).encode() in argv:
                pids.append(int(entry.name))
    return pids


def _group_stats(group: int) -> list[str]:
    """Return /proc/<pid>/stat of every process in a process group (its state follows the name)."""
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.split(")")[-1].split()[2]) == group:
                stats.append(stat)
    return stats
