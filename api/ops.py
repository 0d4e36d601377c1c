"""The operator's endpoints: GET /healthz (the process answers), GET /readyz (the database, Milvus
and an active model answer) and GET /metrics (Prometheus's text format; in production only to the
addresses MOVIEREC_METRICS_ALLOW_IPS names)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Iterator

from anyio import to_thread
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.errors import Refused
from api.metrics import ANSWERS, LATENCY, REQUESTS, STAGE
from api.settings import Settings
from api.state import AppState
from api.versions.models import ModelVersion
from api.versions.service import active_version

log = logging.getLogger(__name__)
READY_S = 1.0


async def healthz(_request: Request) -> Response:
    """Return 200 while the process serves: liveness must not hang on the database or Milvus."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """The endpoint of /readyz, holding the last run of the checks and when it began."""

    def __init__(self) -> None:
        self._run: asyncio.Task[dict[str, str]] | None = None
        self._began = 0.0

    async def endpoint(self, request: Request) -> Response:
        """Return 200 with the checks when all are ok, else 503: those of the last run, which every waiting
        probe shares, or of a new one once the last is done and began READY_S ago or more."""
        if self._run is None or (self._run.done() and time.monotonic() - self._began >= READY_S):
            state: AppState = request.state.movierec
            self._began = time.monotonic()
            self._run = asyncio.ensure_future(to_thread.run_sync(_readiness, state, limiter=state.threads))
        checks = await asyncio.shield(self._run)  # a probe that leaves does not cancel the others'
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )


def _readiness(state: AppState) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["model"] = "ok" if state.models.get(session) is not None else "no active model"
    except Exception as error:  # any failure means "not ready"
        log.warning("readiness: database check failed: %s", error)
        checks["database"] = "unavailable"
        checks.setdefault("model", "unknown")
    checks["milvus"] = "ok" if state.store.ping() else "unavailable"
    return checks


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
                active_row = active_version(session=session)
        except Exception:  # the database being down must not break the scrape of the other metrics
            return
        for status, count in counts:
            runs.add_metric([status], count)
        active.add_metric([], active_row.id if active_row else 0)
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
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # a dual-stack socket's IPv4
        address = address.ipv4_mapped
    return any(address in network for network in settings.metrics_networks)


async def metrics_endpoint(request: Request) -> Response:
    """Serve the metrics in Prometheus's text format, or 403 FORBIDDEN to an address not allowed."""
    state: AppState = request.state.movierec
    if not may_scrape(state.settings, request.client.host if request.client else ""):
        message = "metrics are served only to the addresses in MOVIEREC_METRICS_ALLOW_IPS"
        return Refused(403, "FORBIDDEN", message).response()
    registry = CollectorRegistry()
    if state.settings.metrics_dir is not None:  # the workers of `movierec serve` share it
        MultiProcessCollector(registry, path=str(state.settings.metrics_dir))
    else:
        for collector in (REQUESTS, LATENCY, STAGE, ANSWERS):
            registry.register(collector)
    registry.register(ModelCollector(state))
    # Reading the workers' files and the database (synchronously) blocks: in a worker thread.
    body = await to_thread.run_sync(generate_latest, registry, limiter=state.threads)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
