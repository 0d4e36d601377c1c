"""Prometheus metrics every layer counts into, and the served workers' logging with its access log. With
several workers set PROMETHEUS_MULTIPROC_DIR: /metrics (api.ops) then sums every worker's samples."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import Counter, Histogram

access_log = logging.getLogger("api.access")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REQUESTS = Counter("movierec_graphql_requests_total", "GraphQL operations", ["operation", "status"])
LATENCY = Histogram(
    "movierec_graphql_request_seconds", "GraphQL operation latency", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
STAGE = Histogram(
    "movierec_recommendation_stage_seconds", "Time of each recommendation stage", ["stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)  # fmt: skip
ANSWERS = Counter(
    "movierec_recommendation_answers_total", "User recommendations by how they were answered", ["source"]
)  # source: kept (a current kept list) or computed


class BufferedAccessHandler(logging.StreamHandler):
    """The access log's handler: lines go through the stream's buffer, flushed every `interval` seconds
    by a background thread and on close, as nginx's buffered access_log: a write per request costs a
    worker time under load, and a crash loses at most `interval` seconds of access lines."""

    def __init__(self, stream: Any = None, interval: float = 1.0) -> None:
        super().__init__(stream)
        self.interval = interval
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()  # not _closed: logging.Handler.close sets that to True

    def emit(self, record: logging.LogRecord) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="access-log-flush", daemon=True)
            self._ticker.start()
        super().emit(record)

    def flush(self) -> None:
        """Nothing: StreamHandler.emit calls this after every line; the ticker and close flush."""

    def close(self) -> None:
        self._stop.set()
        super().flush()
        super().close()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            super().flush()


def log_config(verbose: bool) -> dict[str, object]:
    """Return uvicorn's logging config: one JSON line per GraphQL operation on stdout, warnings on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {  # the access handler's default format is the message alone
            "access": {"class": "api.metrics.BufferedAccessHandler", "stream": "ext://sys.stdout"},
            "default": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "api.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            # uvicorn's loggers (its access log among them) write through the root's handler, once
            "uvicorn": {"level": "INFO" if verbose else "WARNING"},
        },
        "root": {"handlers": ["default"], "level": "DEBUG" if verbose else "WARNING"},
    }
