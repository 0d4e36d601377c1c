"""Queries and writes for model versions: a run's life (running, succeeded, failed) and activation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from api.db import utcnow
from api.errors import BadUserInput, NotFound
from api.versions.models import Experiment, ModelVersion

# The test metrics shown with a version (dashboard, `movierec train`): the NCF protocol (99 sampled
# unrated movies), then full ranking against every movie the user had not rated.
SHOWN_METRICS = (
    ("hr@10", "HR@10 (sampled)"),
    ("ndcg@10", "NDCG@10 (sampled)"),
    ("recall@10", "HR@10 (full)"),
    ("full_ndcg@10", "NDCG@10 (full)"),
    ("recall@20", "Recall@20 (full)"),
)


COLLECTION_PREFIX = "movies_v"


def collection_name(version_id: int) -> str:
    """Return the Milvus collection that holds a version's movie vectors."""
    return f"{COLLECTION_PREFIX}{version_id}"


def start_version(
    *, session: Session, params: dict[str, Any], started_by: str, status: str = "running"
) -> ModelVersion:
    """Insert a version and return it (the caller commits)."""
    version = ModelVersion(
        status=status, params=params, started_by=started_by, started_at=utcnow(), progress={"percent": 0.0}
    )
    session.add(version)
    session.flush()
    return version


def busy_version(*, session: Session, lock: bool = False) -> ModelVersion | None:
    """Return the queued or running version, if any (lock: hold its rows until the caller commits)."""
    query = select(ModelVersion).where(ModelVersion.status.in_(("queued", "running")))
    query = query.order_by(ModelVersion.id).limit(1)
    return session.scalar(query.with_for_update() if lock else query)


def queue_version(*, session: Session, params: dict[str, Any], started_by: str) -> ModelVersion:
    """Insert a queued version and return it (the caller commits); refused while another one trains."""
    if (busy := busy_version(session=session, lock=True)) is not None:
        raise BadUserInput(
            f"model version {busy.id} is {busy.status}; only one training runs at a time, "
            "wait for it to finish"
        )
    return start_version(session=session, params=params, started_by=started_by, status="queued")


def mark_running(*, session: Session, version_id: int, progress: dict[str, Any]) -> None:
    """Move a queued version to running; refused when it is no longer queued (reaped or cancelled)."""
    queued = ModelVersion.status == "queued"
    if _update(session, version_id, queued, status="running", progress=progress) != 1:
        raise BadUserInput(f"model version {version_id} is not queued")


def record_progress(*, session: Session, version_id: int, progress: dict[str, Any]) -> None:
    _update(session, version_id, progress=progress)


def finish_version(*, session: Session, version_id: int, metrics: dict[str, Any], artifact_path: str) -> None:
    values = {"metrics": metrics, "artifact_path": artifact_path, "finished_at": utcnow()}
    _update(session, version_id, status="succeeded", **values)


def fail_version(*, session: Session, version_id: int, error: str) -> None:
    _update(session, version_id, status="failed", error=error[:10_000], finished_at=utcnow())


def _update(session: Session, version_id: int, *where: ColumnElement[bool], **values: Any) -> int:
    """Set values on the version's row if `where` holds too; return how many rows changed."""
    query = update(ModelVersion).where(ModelVersion.id == version_id, *where).values(**values)
    return session.execute(query).rowcount  # type: ignore[attr-defined]


def get_version(*, session: Session, version_id: int) -> ModelVersion:
    if (version := session.get(ModelVersion, version_id)) is None:
        raise NotFound(f"model version {version_id} does not exist")
    return version


def servable_artifact(*, session: Session, version_id: int) -> Path:
    """Return the directory of a version that can serve (a succeeded one), else raise BadUserInput."""
    version = get_version(session=session, version_id=version_id)
    if version.status != "succeeded" or not version.artifact_path:
        raise BadUserInput(
            f"model version {version_id} is {version.status}; only a succeeded version can serve"
        )
    return Path(version.artifact_path)


def active_version(*, session: Session) -> ModelVersion | None:
    """Return the version that serves, if any."""
    return session.execute(select(ModelVersion).where(ModelVersion.is_active.is_(True))).scalar_one_or_none()


def list_versions(*, session: Session, limit: int = 100) -> list[ModelVersion]:
    """Return the newest versions first."""
    return list(session.execute(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)).scalars())


def set_active(*, session: Session, version_id: int, collection: str) -> None:
    """Make a succeeded version the active one, in the caller's transaction (readers see old or new)."""
    servable_artifact(session=session, version_id=version_id)
    # NULL first: the unique TRUE-or-NULL column admits a single active row at any moment.
    session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=None))
    _update(session, version_id, is_active=True, collection_name=collection)


def end_experiment(
    session: Session, experiment: Experiment, outcome: str, at: datetime | None = None
) -> None:
    """Mark a running experiment stopped, saying why (the caller commits)."""
    experiment.is_running, experiment.stopped_at, experiment.outcome = None, at or utcnow(), outcome[:255]


def running_experiment(*, session: Session, lock: bool = False) -> Experiment | None:
    """Return the experiment marked running (it may be past its end: api.versions.registry.is_serving)."""
    query = select(Experiment).where(Experiment.is_running.is_(True))
    return session.scalar(query.with_for_update() if lock else query)
