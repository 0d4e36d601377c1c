"""Prometheus metrics (prometheus_client) and the one-line-per-request access log.

With several uvicorn workers set PROMETHEUS_MULTIPROC_DIR so that every worker's samples are
aggregated (prometheus_client's multiprocess mode); /metrics then reports the sum. In production
/metrics answers only the addresses MOVIEREC_METRICS_ALLOW_IPS names (loopback by default).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from anyio import to_thread
from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.graphql.errors import code_and_message
from api.settings import Settings
from api.state import AppState
from api.versions.models import ModelVersion

access_log = logging.getLogger("api.access")

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


def operation_label(context: Any) -> str:
    """Return the operation's root fields, by the schema's own names only (bounded cardinality):
    names a client made up, which fail validation, are "unknown"; a document that did not parse
    is "invalid"."""
    document = context.graphql_document
    name = context.operation_name
    if document is None:
        return "invalid"
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            known = _root_fields(context.schema._schema)
            fields = {s.name.value for s in definition.selection_set.selections if isinstance(s, FieldNode)}
            if not fields <= known:
                return "unknown"
            return "+".join(sorted(fields)[:3]) or "anonymous"
    return "unknown"


@functools.cache
def _root_fields(schema: GraphQLSchema) -> frozenset[str]:
    roots = (schema.query_type, schema.mutation_type, schema.subscription_type)
    return frozenset({"__typename", "__schema", "__type"}).union(*(r.fields for r in roots if r is not None))


class BufferedAccessHandler(logging.StreamHandler):
    """The access log's handler: lines go through the stream's buffer, flushed at most every
    `interval` seconds (by a background thread when traffic stops) and on close, as nginx's
    buffered access_log does: a write per request costs a worker time under load, and
    a crash loses at most `interval` seconds of access lines, and warnings are not written here.
    """

    def __init__(self, stream: Any = None, interval: float = 1.0) -> None:
        super().__init__(stream)
        self.interval = interval
        self._flushed = time.monotonic()
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="access-log-flush", daemon=True)
            self._ticker.start()
        super().emit(record)

    def flush(self) -> None:  # StreamHandler.emit calls this after every line
        if time.monotonic() - self._flushed >= self.interval:
            self.flush_now()

    def flush_now(self) -> None:
        with self.lock or contextlib.nullcontext():
            if self.stream is not None and hasattr(self.stream, "flush"):
                self.stream.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        self.flush_now()
        super().close()

    def _tick(self) -> None:
        while not self._closed.wait(self.interval):
            self.flush_now()


def record_operation(context: Any, elapsed: float) -> None:
    """Count and time a finished operation (a Strawberry execution context) and write its access-log line."""
    label = operation_label(context)
    result = context.result
    errors = getattr(result, "errors", None) or context.pre_execution_errors or []
    status = "error" if errors else "ok"
    REQUESTS.labels(label, status).inc()
    LATENCY.labels(label).observe(elapsed)
    codes = sorted({code_and_message(e)[0] for e in errors})
    name = context.operation_name
    access_log.info(json.dumps({"operation": label, "name": name and name[:100], "status": status,
                                "ms": round(elapsed * 1000, 2), "codes": codes}))  # fmt: skip


class ModelCollector(Collector):
    """Reads training runs and the active version from the database at scrape time."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily("movierec_training_runs", "Training runs by status", labels=["status"])
        active = GaugeMetricFamily(
            "movierec_active_model_version", "Id of the active model version (0: none)"
        )
        try:
            with self.state.sessions() as session:
                counts = session.execute(
                    select(ModelVersion.status, func.count()).group_by(ModelVersion.status)
                ).all()
                version = session.execute(
                    select(ModelVersion.id).where(ModelVersion.is_active.is_(True))
                ).scalar()
        except Exception:  # the database being down must not break the scrape of the other metrics
            return
        for status, count in counts:
            runs.add_metric([status], count)
        active.add_metric([], version or 0)
        yield runs
        yield active


def may_scrape(settings: Settings, host: str) -> bool:
    """Return whether `host` is served /metrics: anyone outside production, else those allowed."""
    if settings.environment != "production":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # no address (a unix socket) is nobody named
        return False
    if (
        isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped
    ):  # a dual-stack socket's IPv4 client
        address = address.ipv4_mapped
    return any(address in network for network in settings.metrics_networks)


async def metrics_endpoint(request: Request) -> Response:
    """Serve the metrics in Prometheus's text format, or 403 FORBIDDEN to an address not allowed."""
    state: AppState = request.state.movierec
    if not may_scrape(state.settings, request.client.host if request.client else ""):
        message = "metrics are served only to the addresses in MOVIEREC_METRICS_ALLOW_IPS"
        return JSONResponse({"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]}, 403)
    registry = CollectorRegistry()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, LATENCY, STAGE, ANSWERS):
            registry.register(collector)
    registry.register(ModelCollector(state))
    # Reading the workers' files and the database blocks: in a worker thread, as every request's I/O.
    body = await to_thread.run_sync(generate_latest, registry, limiter=state.threads)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
