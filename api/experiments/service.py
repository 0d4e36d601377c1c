"""Experiments' life (start, stop, promote the treatment) and the feedback users give on what they
were shown. A user's arm and the treatment's model are the registry's (api.versions.registry)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.db import utcnow
from api.errors import BadUserInput, Conflict, Forbidden, NotFound
from api.experiments.models import FEEDBACK_KINDS, Feedback, Impression
from api.vectors.store import VectorStore
from api.versions.activation import activate, build_collection
from api.versions.models import Experiment, ModelVersion
from api.versions.service import active_version, end_experiment, running_experiment, servable_artifact
from ml.serving import LoadedModel

NAME_CHARS = 128


class UnknownImpression(NotFound):
    """No such impression: not written yet when another process served it moments ago, else none."""


def check_share(share: float) -> float:
    if not 0 < share < 1:
        raise BadUserInput(f"the treatment's share of users must be between 0 and 1 (exclusive), not {share}")
    return share


def start_experiment(
    *,
    sessions: sessionmaker,
    store: VectorStore,
    treatment_version_id: int,
    treatment_share: float,
    name: str = "",
    ends_at: datetime | None = None,
    by: str = "cli",
) -> Experiment:
    """Start an experiment of a succeeded version against the active one (the control), on a share of
    users; its collection is built first (as activation builds one). One runs at a time (Conflict)."""
    check_share(treatment_share)
    if ends_at is not None and ends_at <= utcnow():
        raise BadUserInput("the experiment's end must be in the future")
    with sessions() as session:
        control = active_version(session=session)
        if control is None:
            raise BadUserInput("no version is active: activate one to be the control first")
        if control.id == treatment_version_id:
            raise BadUserInput(f"model version {treatment_version_id} is the active one (the control)")
        if (running := _running(session)) is not None:
            raise Conflict(f"experiment {running.id} is running; stop it first (one runs at a time)")
        model = LoadedModel.load(servable_artifact(session=session, version_id=treatment_version_id))
        collection = build_collection(
            session=session, store=store, version_id=treatment_version_id, model=model
        )
    store.load(collection)
    try:
        with sessions.begin() as session:
            if (running := _running(session)) is not None:
                raise Conflict(f"experiment {running.id} is running; stop it first (one runs at a time)")
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == treatment_version_id)
                .values(collection_name=collection)
            )
            experiment = Experiment(
                name=(name.strip() or f"version {treatment_version_id} against {control.id}")[:NAME_CHARS],
                control_version_id=control.id,
                treatment_version_id=treatment_version_id,
                treatment_share=treatment_share,
                salt=secrets.token_hex(8),
                started_by=by[:64],
                ends_at=ends_at,
            )
            session.add(experiment)
            session.flush()
            return experiment
    except IntegrityError:  # another process started one between the check and the insert
        raise Conflict("another experiment started meanwhile; one runs at a time") from None


def _running(session: Session) -> Experiment | None:
    """Return the running experiment; one past its end is closed (in the caller's transaction, if any)."""
    row = running_experiment(session=session)
    if row is not None and row.ends_at is not None and row.ends_at <= utcnow():
        end_experiment(session, row, "ended", at=row.ends_at)
        return None
    return row


def stop_experiment(*, sessions: sessionmaker, by: str = "cli") -> Experiment:
    """Stop the running experiment; its impressions and feedback stay for its results."""
    with sessions.begin() as session:
        row = running_experiment(session=session, lock=True)
        if row is None:
            raise NotFound("no experiment is running")
        end_experiment(session, row, f"stopped by {by}")
        return row


def promote_treatment(*, sessions: sessionmaker, store: VectorStore, by: str = "cli") -> Experiment:
    """Activate the running experiment's treatment version (recorded in the activations' history),
    which ends the experiment."""
    with sessions() as session:
        row = _running(session)
        if row is None:
            raise NotFound("no experiment is running")
        treatment = row.treatment_version_id
    activate(sessions=sessions, store=store, version_id=treatment, by=by)
    with sessions() as session:
        promoted = session.get(Experiment, row.id)
        assert promoted is not None
        return promoted


def list_experiments(*, session: Session, limit: int = 100) -> list[Experiment]:
    return list(session.scalars(select(Experiment).order_by(Experiment.id.desc()).limit(limit)))


def get_experiment(*, session: Session, experiment_id: int | None = None) -> Experiment:
    """Return an experiment by id, or (None) the running one, else the newest."""
    if experiment_id is not None:
        row = session.get(Experiment, experiment_id)
    else:
        row = running_experiment(session=session) or session.scalar(
            select(Experiment).order_by(Experiment.id.desc()).limit(1)
        )
    if row is None:
        raise NotFound(f"experiment {experiment_id} does not exist" if experiment_id else "no experiment yet")
    return row


def record_feedback(
    *, session: Session, user_id: int, impression_id: int, movie_id: int, kind: str
) -> Feedback:
    """Record what a user did with a movie an impression showed them (the caller commits)."""
    if kind not in FEEDBACK_KINDS:
        raise BadUserInput(f"kind must be one of {', '.join(FEEDBACK_KINDS)}")
    impression = session.get(Impression, impression_id)
    if impression is None:
        raise UnknownImpression(f"impression {impression_id} does not exist")
    if impression.user_id != user_id:
        raise Forbidden(f"impression {impression_id} was shown to another user")
    if str(movie_id) not in impression.movie_ids.split(","):
        raise BadUserInput(f"impression {impression_id} did not show movie {movie_id}")
    row = Feedback(impression_id=impression_id, user_id=user_id, movie_id=movie_id, kind=kind)
    session.add(row)
    session.flush()
    return row
