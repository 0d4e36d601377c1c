"""`movierec experiments`: start, stop, promote, list and report A/B experiments between model versions."""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from api.cli.commands import CommandError, batch_sessions, keep_with_progress, vector_store
from api.settings import Settings

if TYPE_CHECKING:
    from api.experiments.results import Results
    from api.versions.models import Experiment

MAX_WINDOW_S = 365 * 24 * 3600  # feedback a year after an impression is no longer about it


def cmd_experiments_start(args: argparse.Namespace, settings: Settings) -> None:
    """Serve a share of users from a succeeded version (the treatment) instead of the active one (the
    control), until stopped, promoted, another version is activated or --days have passed."""
    from api.db import utcnow
    from api.experiments.service import start_experiment

    try:
        ends_at = None if args.days is None else utcnow() + timedelta(days=args.days)
    except (OverflowError, ValueError):  # not a number (nan), or past the calendar's end
        raise CommandError(f"--days {args.days:g} gives no date to end on") from None
    from api.recommend.kept import keep_treatment_lists

    sessions = batch_sessions(settings)
    with vector_store(settings) as store:
        row = start_experiment(
            sessions=sessions,
            store=store,
            treatment_version_id=args.treatment,
            treatment_share=args.share,
            name=args.name,
            ends_at=ends_at,
            by=f"cli:{getpass.getuser()}",
        )
        versions = f"control version {row.control_version_id}, treatment version {row.treatment_version_id}"
        share = f"for a share of {row.treatment_share:g} of users"
        print(f"started experiment {row.id} ({row.name}): {versions} {share}, {_until(row)}")
        kept = keep_treatment_lists(sessions=sessions, store=store, experiment_id=row.id)
        print(f"kept the recommendations of {kept} treatment users with version {row.treatment_version_id}")


def cmd_experiments_stop(_args: argparse.Namespace, settings: Settings) -> None:
    from api.errors import NotFound
    from api.experiments.service import stop_experiment

    try:
        row = stop_experiment(sessions=batch_sessions(settings), by=f"cli:{getpass.getuser()}")
    except NotFound:  # stopping what is not running leaves what was asked for: nothing runs
        print("no experiment is running; nothing to stop")
        return
    print(f"stopped experiment {row.id} ({row.name}); version {row.control_version_id} serves every user")


def cmd_experiments_promote(_args: argparse.Namespace, settings: Settings) -> None:
    """Activate the running experiment's treatment version for every user, which ends the experiment,
    then keep its users' lists as `movierec versions activate` does."""
    from api.experiments.service import promote_treatment

    sessions = batch_sessions(settings)
    with vector_store(settings) as store:
        row = promote_treatment(sessions=sessions, store=store, by=f"cli:{getpass.getuser()}")
        print(f"version {row.treatment_version_id} is active: experiment {row.id} promoted its treatment")
        keep_with_progress(sessions, store, row.treatment_version_id, quiet=False)


def cmd_experiments_list(_args: argparse.Namespace, settings: Settings) -> None:
    from api.experiments.service import list_experiments

    with batch_sessions(settings)() as session:
        rows = list_experiments(session=session)
    if not rows:
        print("no experiments yet; run `movierec experiments start --treatment VERSION`")
    for row in rows:
        arms = f"v{row.control_version_id} against v{row.treatment_version_id}"
        share = f"share {row.treatment_share:g}"
        print(f"{'*' if _running(row) else ' '} {row.id:<4} {arms} ({share})  {row.name}: {_state(row)}")


def cmd_experiments_report(args: argparse.Namespace, settings: Settings) -> None:
    """Per arm: users, impressions, the mean of the users' positive rates (a click, a watch or a rating
    of 4 or more of a movie shown, within the window), the mean rating of movies shown and the share
    of the catalogue shown; then the difference between arms (Welch's test) and the sample-ratio
    check. Without --id, the running experiment, else the newest."""
    from api.experiments.results import experiment_results
    from api.experiments.service import get_experiment

    window = settings.experiment_window_s if args.window is None else args.window
    if not 0 < window <= MAX_WINDOW_S:
        raise CommandError(f"--window is a number of seconds above 0 and at most {MAX_WINDOW_S} (a year)")
    with batch_sessions(settings)() as session:
        experiment = get_experiment(session=session, experiment_id=args.id)
        results = experiment_results(session=session, experiment=experiment, window_s=window)
    if args.json:
        print(json.dumps(json_report(results), indent=2))
    else:
        print(text_report(results))


def json_report(results: Results) -> dict[str, Any]:
    """Return the results as JSON values, under keys that scripts may rely on."""
    row = results.experiment
    comparison = results.comparison
    return {
        "experiment": {
            "id": row.id,
            "name": row.name,
            "control_version": row.control_version_id,
            "treatment_version": row.treatment_version_id,
            "treatment_share": row.treatment_share,
            "started_at": _utc(row.started_at),
            "ends_at": _utc(row.ends_at),
            "stopped_at": _utc(row.stopped_at),
            "outcome": row.outcome,
            "running": _running(row),
        },
        "window_s": results.window_s,
        "arms": {
            arm: {
                "version": result.version_id,
                "users": result.users,
                "impressions": result.impressions,
                "positive_impressions": result.positive_impressions,
                "positive_rate": result.positive_rate,
                "mean_rating": result.mean_rating,
                "coverage": result.coverage,
            }
            for arm, result in results.arms.items()
        },
        "comparison": None
        if comparison is None
        else {
            "difference": comparison.difference,
            "low": comparison.low,
            "high": comparison.high,
            "p_value": comparison.p_value,
            "lift": comparison.lift,
        },
        "sample_ratio": {"p_value": results.srm_p_value, "ok": results.sample_ratio_ok},
    }


def text_report(results: Results) -> str:
    """Return the results as a table of the arms and a line each for the comparison and the split."""
    row = results.experiment
    lines = [
        f"experiment {row.id} ({row.name}): {_state(row)}",
        f"treatment share {row.treatment_share:g}; feedback window {results.window_s} s from an impression",
        f"{'arm':<10} {'version':>7} {'users':>7} {'impressions':>11} {'positive rate':>13} "
        f"{'mean rating':>11} {'coverage':>8}",
    ]
    for arm, result in results.arms.items():
        lines.append(
            f"{arm:<10} {'v' + str(result.version_id):>7} {result.users:>7} {result.impressions:>11} "
            f"{_figure(result.positive_rate, '.4f'):>13} {_figure(result.mean_rating, '.2f'):>11} "
            f"{result.coverage:>8.1%}"
        )
    c = results.comparison
    if c is None:
        lines.append("treatment - control: no comparison until each arm has two users")
    else:
        lift = f", lift {c.lift:+.1%}" if c.lift is not None else ""
        interval = f"95% CI {c.low:+.4f} to {c.high:+.4f}"
        lines.append(f"treatment - control: {c.difference:+.4f} ({interval}), p = {c.p_value:.4f}{lift}")
    if results.srm_p_value is None:
        lines.append("sample ratio: no users yet")
    else:
        verdict = "ok" if results.sample_ratio_ok else "mismatch: the split of users is not the share set"
        lines.append(f"sample ratio: p = {results.srm_p_value:.4f}, {verdict}")
    return "\n".join(lines)


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _utc(value: datetime | None) -> str | None:
    """Return a time as the API writes a DateTime, or None."""
    from api.graphql.scalars import utc_stamp

    return None if value is None else utc_stamp(value)


def _until(row: Experiment) -> str:
    return "until stopped" if row.ends_at is None else f"until {row.ends_at:%Y-%m-%d %H:%M} UTC"


def _running(row: Experiment) -> bool:
    """Whether the experiment still serves: one past its end is closed only by the next start or promotion."""
    from api.db import utcnow

    return bool(row.is_running) and (row.ends_at is None or row.ends_at > utcnow())


def _state(row: Experiment) -> str:
    if _running(row):
        return f"running since {row.started_at:%Y-%m-%d %H:%M} UTC, {_until(row)}"
    ended = row.stopped_at or row.ends_at
    when = f"{ended:%Y-%m-%d %H:%M} UTC" if ended else "at an unrecorded time"
    return f"ended {when} ({row.outcome or 'its end came'})"
