"""Milvus Lite: which URIs are its files, where its server logs, and the one server of a file that
`movierec serve --workers` keeps running for its worker processes."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
LITE_LOGS_KEPT = 20  # Milvus Lite log files kept beside its file (lite_environment)
GLOG_DIR = "GLOG_log_dir"  # glog reads each flag from GLOG_<flag>, in the flag's own case
_GLOG_DIR_GIVEN = GLOG_DIR in os.environ  # an operator's own choice of log directory wins


class LiteError(RuntimeError):
    """Milvus Lite's server could not be started."""


def is_lite_file(uri: str) -> bool:
    """Return whether uri is a Milvus Lite file, whose server the process opening it starts."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


@contextlib.contextmanager
def lite_environment(path: str) -> Iterator[None]:
    """Within the block, a Milvus Lite server started for the file at `path`:
    - logs into `milvus-lite-logs` beside it (the newest LITE_LOGS_KEPT files), not /tmp for ever;
    - keeps its scratch directory in `milvus-lite-home/<file name>` beside it. The server takes
      $HOME/.cache/milvus, empties it when it starts and deletes it when it stops: servers of two files
      sharing one HOME can break each other's start ("Mmap manager has not been init" on every call).
    The variables are set only while the server starts: worker processes that inherit GLOG_log_dir
    crash ("double free or corruption")."""
    beside = Path(path).resolve().parent
    home = beside / "milvus-lite-home" / Path(path).name
    home.mkdir(parents=True, exist_ok=True)
    changes = {"HOME": str(home)}
    if not _GLOG_DIR_GIVEN:
        directory = beside / "milvus-lite-logs"
        directory.mkdir(exist_ok=True)
        logs = sorted(
            (p for p in directory.glob("milvus.*.log.*") if not p.is_symlink()), key=os.path.getmtime
        )
        for old in logs[:-LITE_LOGS_KEPT]:
            old.unlink(missing_ok=True)
        changes[GLOG_DIR] = str(directory)
    before = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def release_lite_server(uri: str) -> None:
    """Stop the Milvus Lite server that this process's clients of the file at uri started: pymilvus keeps
    it running after they close, until the process exits. A server's URI is left alone."""
    if is_lite_file(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def is_embedded(uri: str) -> bool:
    """Return whether uri is Milvus Lite: its file, or the unix socket of the Lite server that
    `movierec serve --workers` starts (api/server.py), rather than a Milvus server."""
    return uri.startswith("unix:") or is_lite_file(uri)


class LiteKeeper:
    """The one Milvus Lite server of a Lite file, which the workers reach through its unix socket,
    started again on the same socket when it stops answering, where the workers' clients reconnect."""

    CHECK_S = 1.0

    def __init__(self, path: Path) -> None:
        from milvus_lite.server import Server

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.server = str(path), Server(str(path))
        self.socket_path = self.server.uds_path.removeprefix("unix:")
        with lite_environment(self.path):
            if not (self.server.init() and self.server.start()):
                raise LiteError(f"cannot start Milvus Lite on {path} (is another process using it?)")
        self._stopped = threading.Event()
        self._watch = threading.Thread(target=self._keep, name="milvus-lite-keeper", daemon=True)
        self._watch.start()

    def answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(self.socket_path)
            except OSError:
                return False
        return True

    def _keep(self) -> None:
        while not self._stopped.wait(self.CHECK_S):
            if self.answers():
                continue
            log.warning("Milvus Lite stopped answering on %s; starting it again", self.socket_path)
            self.server.stop()  # the lock and the dead socket go; the same address is used again
            with lite_environment(self.path):
                started = self.server.start()
            if not started:
                log.error("Milvus Lite could not be started again; retrying in %s s", self.CHECK_S)

    def stop(self) -> None:
        self._stopped.set()
        self._watch.join(timeout=10)
        self.server.stop()
