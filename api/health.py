"""GET /healthz (the process answers) and GET /readyz (the database, Milvus and an active model
answer), both cheap whatever their number: /healthz checks nothing, and /readyz answers from checks
made at most once per READY_S, one run at a time however many probes wait for it."""

from __future__ import annotations

import asyncio
import logging
import time

from anyio import to_thread
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.state import AppState

log = logging.getLogger(__name__)
READY_S = 1.0


async def healthz(_request: Request) -> Response:
    """Return 200 while the process serves: liveness must not hang on the database or Milvus."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """The endpoint of /readyz, holding the last checks and when they began."""

    def __init__(self) -> None:
        self._checks: dict[str, str] = {}
        self._checked_at = -READY_S
        self._checking: asyncio.Task[dict[str, str]] | None = None

    async def endpoint(self, request: Request) -> Response:
        """Return 200 with the checks when all are ok, else 503 with the failing one."""
        checks = await self.checks(request.state.movierec)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    async def checks(self, state: AppState) -> dict[str, str]:
        """Return checks begun less than READY_S ago, made now if there are none."""
        if time.monotonic() - self._checked_at < READY_S:
            return self._checks
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check(state))
            self._checking.add_done_callback(self._checked)
        return await asyncio.shield(self._checking)  # a probe that leaves does not cancel the others'

    async def _check(self, state: AppState) -> dict[str, str]:
        began = time.monotonic()
        checks = await to_thread.run_sync(_readiness, state, limiter=state.threads)
        self._checks, self._checked_at = checks, began
        return checks

    def _checked(self, _task: asyncio.Task[dict[str, str]]) -> None:
        self._checking = None


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
