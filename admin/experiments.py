"""The dashboard's experiments page: an experiment's arms side by side with their difference in words, a
daily chart of each arm's positive rate, the past experiments; and its POSTs, which start one, stop it or
promote its treatment. A refused POST comes back as the page, saying why, with a 4xx status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from admin.actions import BY
from admin.auth import checked_form
from admin.views import redirect, render, state_of
from api.db import utcnow
from api.errors import BadUserInput, Conflict, NotFound, ServiceError
from api.experiments.results import Comparison, Day, Results, experiment_results
from api.experiments.service import (
    get_experiment,
    list_experiments,
    promote_treatment,
    start_experiment,
    stop_experiment,
)
from api.ids import parse_id
from api.recommend.kept import keep_in_background
from api.versions.registry import is_serving
from api.versions.service import active_version, list_versions, running_experiment

STATUS = {"NOT_FOUND": 404, "CONFLICT": 409}  # any other refusal is the form's input: 400
LISTED = 100  # past experiments on the page
MAX_DAYS = 365  # the farthest end the form sets
FORM_FIELDS = ("treatment", "share", "name", "days")


async def page(
    request: Request, *, error: str | None = None, status_code: int = 200, form: FormData | None = None
) -> Response:
    """Return the page of the experiment ?id= names, else of the running one, else of the newest."""
    state = state_of(request)
    raw_id = request.query_params.get("id", "")
    experiment_id = parse_id(raw_id) if raw_id else None
    if raw_id and experiment_id is None:
        raise HTTPException(404, "experiments are named by their number")
    window_s = state.settings.experiment_window_s

    def read(session: Session) -> dict[str, Any]:
        experiments = list_experiments(session=session, limit=LISTED)
        results = None
        if experiment_id is not None or experiments:
            shown = get_experiment(session=session, experiment_id=experiment_id)
            results = experiment_results(session=session, experiment=shown, window_s=window_s)
        versions = list_versions(session=session, limit=200)
        return {
            "experiments": experiments,
            "results": results,
            "active": active_version(session=session),
            "candidates": [v for v in versions if v.status == "succeeded" and not v.is_active],
        }

    try:
        # Results count every impression in Python (scipy's tests too): a worker thread's work.
        context = await state.run_blocking(read)
    except NotFound as missing:
        raise HTTPException(404, str(missing)) from None
    results: Results | None = context["results"]
    active, experiments = context["active"], context["experiments"]
    running = next((e for e in experiments if e.is_running and is_serving(e, active)), None)
    raw = {name: value for name in FORM_FIELDS if form and isinstance(value := form.get(name), str)}
    return render(
        request,
        "experiments.html",
        status_code=status_code,
        error=error,
        running=running,
        raw=raw,
        verdict=verdict(results.comparison) if results else None,
        sample_ratio=sample_ratio_text(results) if results else None,
        chart=daily_chart(results.days) if results else None,
        window_s=window_s,
        max_days=MAX_DAYS,
        **context,
    )


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def verdict(comparison: Comparison | None) -> str:
    """Return the difference treatment - control in words, in percentage points of the positive rate."""
    if comparison is None:
        return "not enough users yet: each arm needs two"
    c = comparison
    interval = f"(95% CI {100 * c.low:.1f} to {100 * c.high:.1f}), {p_text(c.p_value)}"
    if c.low > 0 or c.high < 0:  # the interval leaves out zero
        direction = "ahead" if c.difference > 0 else "behind"
        return f"treatment {direction} by {100 * abs(c.difference):.1f} points {interval}"
    return f"no difference shown yet: {100 * c.difference:+.1f} points {interval}"


def sample_ratio_text(results: Results) -> str:
    if results.srm_p_value is None:
        return "no users yet"
    said = "passes" if results.sample_ratio_ok else "mismatch: the split is broken"
    return f"{said} ({p_text(results.srm_p_value)})"


WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 400, 200, 44, 10, 10, 24  # the chart's canvas and margins


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # the point's value in words, its tooltip


@dataclass(frozen=True)
class Chart:
    series: dict[str, list[Point]]  # arm -> one point a day
    top: float  # the rate at the top of the y axis (its bottom is 0)
    first: date
    last: date
    box: tuple[int, int, int, int] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)  # x0, y0, x1, y1


def daily_chart(days: list[Day]) -> Chart | None:
    """Return each arm's daily positive rate placed on the canvas, or None before any impression."""
    if not days:
        return None
    dates = sorted({d.day for d in days})
    top = max(d.positive_rate for d in days) or 1.0
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM

    def x(day: date) -> float:
        return (x0 + x1) / 2 if len(dates) == 1 else x0 + dates.index(day) / (len(dates) - 1) * (x1 - x0)

    series: dict[str, list[Point]] = {}
    for d in days:
        label = f"{d.arm}, {d.day}: {100 * d.positive_rate:.1f}% of {d.impressions} impressions"
        series.setdefault(d.arm, []).append(Point(x(d.day), y1 - d.positive_rate / top * (y1 - y0), label))
    return Chart(series, top, dates[0], dates[-1])


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse_start(form: FormData) -> dict[str, Any]:
    """Return start_experiment's arguments from the form; BadUserInput names what to correct."""
    treatment = parse_id(_text(form, "treatment"))
    if treatment is None:
        raise BadUserInput("pick the treatment version")
    share_raw = _text(form, "share") or "0.5"
    try:
        share = float(share_raw)
    except ValueError:
        raise BadUserInput(f"the treatment's share {share_raw!r} is not a number") from None
    days_raw, ends_at = _text(form, "days"), None
    if days_raw:
        days = parse_id(days_raw)
        if days is None or not 1 <= days <= MAX_DAYS:
            raise BadUserInput(f"an experiment ends in 1 to {MAX_DAYS} days, not {days_raw!r}")
        ends_at = utcnow() + timedelta(days=days)
    return {
        "treatment_version_id": treatment,
        "treatment_share": share,
        "name": _text(form, "name"),
        "ends_at": ends_at,
    }


async def refused(request: Request, error: ServiceError, form: FormData | None = None) -> Response:
    return await page(request, error=str(error), status_code=STATUS.get(error.code, 400), form=form)


async def start(request: Request) -> Response:
    form = await checked_form(request)
    state = state_of(request)
    try:
        # Building the treatment's collection takes seconds: off the event loop, which keeps serving.
        experiment = await run_in_threadpool(
            start_experiment, sessions=state.sessions, store=state.store, by=BY, **parse_start(form)
        )
    except ServiceError as error:
        return await refused(request, error, form)
    state.models.invalidate()
    # Until its users' lists are kept, the treatment's requests compute; kept in seconds to a minute.
    keep_in_background(
        sessions=state.sessions,
        store=state.store,
        version_id=experiment.treatment_version_id,
        experiment_id=experiment.id,
    )
    ok = f"Experiment {experiment.id} started: {100 * experiment.treatment_share:g}% of users get version "
    ok += f"{experiment.treatment_version_id}, the others version {experiment.control_version_id}."
    return redirect(request, "admin:experiments", ok=ok)


async def _checked_running(request: Request) -> None:
    """Refuse (Conflict) a POST whose page showed another experiment than the one running now."""
    form = await checked_form(request)
    seen = parse_id(_text(form, "experiment"))
    running = await state_of(request).run(lambda s: running_experiment(session=s))
    if running is None:
        raise NotFound("no experiment is running")
    if running.id != seen:
        raise Conflict(f"experiment {running.id} is the one running now, not {seen}; look at it first")


async def stop(request: Request) -> Response:
    state = state_of(request)
    try:
        await _checked_running(request)
        experiment = await run_in_threadpool(stop_experiment, sessions=state.sessions, by=BY)
    except ServiceError as error:
        return await refused(request, error)
    state.models.invalidate()
    ok = f"Experiment {experiment.id} stopped; its results stay here."
    return redirect(request, "admin:experiments", ok=ok)


async def promote(request: Request) -> Response:
    """Activate the running experiment's treatment, as the activate action does a version."""
    state = state_of(request)
    try:
        await _checked_running(request)
        # Activation builds or loads a collection: off the event loop.
        experiment = await run_in_threadpool(
            promote_treatment, sessions=state.sessions, store=state.store, by=BY
        )
    except ServiceError as error:
        return await refused(request, error)
    version_id = experiment.treatment_version_id
    state.models.invalidate()
    # Until the new version's lists exist, requests compute; they are ready in seconds to a minute.
    keep_in_background(sessions=state.sessions, store=state.store, version_id=version_id)
    ok = f"Version {version_id}, the treatment of experiment {experiment.id}, is active. "
    ok += "Its users' lists are being kept (below)."
    return redirect(request, "admin:overview", ok=ok)
