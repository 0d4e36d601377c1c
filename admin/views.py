"""The dashboard's pages: overview, runs, a run and its progress feed, comparison, activations, 404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from admin import forms
from admin.params import grouped
from admin.service import collection_stats, collections, counts, database_ok
from api.datasets.service import current_dataset
from api.db import utcnow
from api.ids import parse_id
from api.state import AppState
from api.versions.jobs import activations
from api.versions.models import ModelVersion
from api.versions.service import SHOWN_METRICS, active_version, busy_version, list_versions
from ml.config import TrainConfig

FLASH_KEY = "flash"  # the message a redirect leaves for the next page (admin.app._context shows it once)
VALIDATION = tuple((f"valid_{key}", f"{label}, validation (best epoch)") for key, label in SHOWN_METRICS[:2])


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def waiting_for(version: ModelVersion) -> str | None:
    """Return what a run that has trained no step yet is waiting for, in words, or None. Queued: its
    worker process is starting (admin.worker spawns it, and it marks the run running once it has a
    database connection); running without a step: training reads the ratings and builds the model."""
    if version.status not in ("queued", "running") or "step" in (version.progress or {}):
        return None
    started_at = version.started_at or utcnow()  # start_version stamps it (the dashboard's: when queued)
    since = duration((utcnow() - started_at).total_seconds())
    if version.status == "queued":
        return f"waiting for the training worker to start · started {since} ago"
    return f"reading the ratings and building the model, no training step yet · started {since} ago"


def state_of(request: Request) -> AppState:
    return cast(AppState, request.state.movierec)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)


def redirect(request: Request, route: str, *, ok: str = "", error: str = "", **params: object) -> Response:
    """Redirect to a dashboard page's path (nothing from the Host header), which shows the `ok` or `error`
    message once: it rides in the signed session cookie, where a link cannot put words, as `?error=` could."""
    if ok or error:
        request.session[FLASH_KEY] = ["error", error] if error else ["ok", ok]
    return RedirectResponse(request.url_for(route, **params).path, status_code=303)


def overview(request: Request) -> Response:
    state = state_of(request)
    with state.sessions() as session:
        db_ok = database_ok(session=session)
        active = active_version(session=session) if db_ok else None
        return render(
            request,
            "overview.html",
            counts=counts(session=session) if db_ok else None,
            dataset=current_dataset(session=session) if db_ok else None,
            active=active,
            busy=busy_version(session=session) if db_ok else None,
            stats=collection_stats(store=state.store, name=active.collection_name if active else None),
            collections=collections(session=session, store=state.store) if db_ok else None,
            kept=next(iter(activations(session=session, limit=1)), None) if db_ok else None,
            health={"Database": db_ok, "Milvus": state.store.ping()},
            defaults=TrainConfig(),  # the values the form starts with
            fields=forms.FIELDS,
        )


def activation_history(request: Request) -> Response:
    with state_of(request).sessions() as session:
        return render(request, "activations.html", activations=activations(session=session, limit=200))


def refused(request: Request, error: Exception) -> Response:
    """An action the service refused: back to its version's page, or the overview, saying why. Only
    actions (POST) go back: a page that raised would be redirected to itself."""
    if request.method != "POST":
        raise error
    if "version_id" in request.path_params:
        return redirect(request, "admin:run", error=str(error), version_id=request.path_params["version_id"])
    return redirect(request, "admin:overview", error=str(error))


def not_found(request: Request, error: Exception) -> Response:
    """The dashboard's 404: its own page, with the reason when one was given."""
    detail = error.detail if isinstance(error, HTTPException) and error.status_code == 404 else None
    return render(request, "not_found.html", status_code=404, detail=detail)


@dataclass(frozen=True)
class Change:
    """How run B's figure compares with run A's."""

    delta: float  # B - A
    relative: float | None  # (B - A) / A; None when A is 0
    verdict: str  # in words: "better" or "worse" ("faster" or "slower" for a duration), or "no change"
    improved: bool | None  # by the figure's direction; None for no change


def change_of(key: str, a: float | None, b: float | None) -> Change | None:
    """Return B against A for a figure: a loss or a duration is better lower, the ranking metrics (HR,
    NDCG, recall) higher. A difference that rounds to zero at the four decimals shown is no change."""
    if a is None or b is None:
        return None
    delta = b - a
    relative = delta / a if a else None
    if round(delta, 4) == 0:
        return Change(delta, relative, "no change", None)
    improved = delta < 0 if "loss" in key or key.endswith("_seconds") else delta > 0
    words = ("faster", "slower") if key.endswith("_seconds") else ("better", "worse")
    return Change(delta, relative, words[0] if improved else words[1], improved)


def compare(request: Request) -> Response:
    """Two runs side by side: test metrics (with B's change against A), validation's best, hyperparameters.
    `v` names them (twice); named once, the other is the active version. A is the active version when it
    is one of them, else the earlier run; B is the other."""
    ids = [parse_id(raw.strip()) for raw in request.query_params.getlist("v")[:2]]
    if None in ids:
        raise HTTPException(404, "runs are named by their version number")
    with state_of(request).sessions() as session:
        active = active_version(session=session)
        if len(ids) == 1 and active is not None and active.id != ids[0]:
            ids.append(active.id)
        versions = [v for i in ids if (v := session.get(ModelVersion, i)) is not None]
        if len(versions) < len(ids):
            raise HTTPException(404, f"no model version {', '.join(map(str, ids))} to compare")
        versions.sort(key=lambda v: (not v.is_active, v.id))  # A, then B
        metrics = []  # label, figures (A's, B's), B against A
        for key, label in (*SHOWN_METRICS, *VALIDATION, ("train_seconds", "Training steps, seconds")):
            figures = [(v.metrics or {}).get(key) for v in versions]
            metrics.append((label, figures, change_of(key, *figures) if len(figures) == 2 else None))
        keys = sorted({k for v in versions for k in v.params})
        values = {k: [v.params.get(k) for v in versions] for k in keys}
        params = [(k, values[k], len(set(map(repr, values[k]))) > 1) for k in keys]  # name, values, differ?
        return render(request, "compare.html", versions=versions, metrics=metrics, params=params,
                      active_id=active.id if active else None)  # fmt: skip


def runs(request: Request) -> Response:
    with state_of(request).sessions() as session:
        return render(request, "runs.html", versions=list_versions(session=session, limit=200))


def run(request: Request) -> Response:
    with state_of(request).sessions() as session:
        version = _version(session, request)
        groups = grouped(version.params)
        return render(request, "run.html", v=version, progress=progress_of(version), groups=groups)


def run_progress(request: Request) -> Response:
    """Return a run's status and progress as JSON, for the page's polling."""
    with state_of(request).sessions() as session:
        return JSONResponse(progress_of(_version(session, request)), headers={"cache-control": "no-store"})


def _version(session: Session, request: Request) -> ModelVersion:
    version = session.get(ModelVersion, request.path_params["version_id"])
    if version is None:
        raise HTTPException(404, "no such model version")
    return version


def progress_of(version: ModelVersion) -> dict[str, Any]:
    progress = {k: v for k, v in (version.progress or {}).items() if k not in ("pid", "host")}
    return {
        "id": version.id,
        "status": version.status,
        "outcome": version.outcome,
        "monitor": (version.params or {}).get("monitor", "ndcg@10"),
        "error": version.error,
        "waiting": waiting_for(version),
        "metrics": version.metrics,
        "progress": progress,
    }


def curves_of(version: ModelVersion) -> dict[str, Any]:
    """Return a run's loss and validation metrics per epoch, for the comparison's chart (`curves` filter)."""
    history = (version.progress or {}).get("history") or []
    monitor = (version.params or {}).get("monitor", "ndcg@10")
    return {"label": f"Version {version.id}", "monitor": monitor, "history": history}
