"""Queries and writes for model versions: a run's life (running, succeeded, failed) and activation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.db import utcnow
from api.errors import BadUserInput, NotFound
from api.versions.models import ModelVersion

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


def start_version(*, session: Session, params: dict[str, Any], started_by: str) -> ModelVersion:
    """Insert a running version and return it (the caller commits)."""
    version = ModelVersion(
        status="running", params=params, started_by=started_by, started_at=utcnow(), progress={"percent": 0.0}
    )
    session.add(version)
    session.flush()
    return version


def busy_version(*, session: Session, lock: bool = False) -> ModelVersion | None:
    """Return the queued or running version, if any (lock: hold its rows until the caller commits)."""
    query = (
        select(ModelVersion).where(ModelVersion.status.in_(("queued", "running"))).order_by(ModelVersion.id)
    )
    if lock:
        query = query.with_for_update()
    return session.execute(query.limit(1)).scalar_one_or_none()


def queue_version(*, session: Session, params: dict[str, Any], started_by: str) -> ModelVersion:
    """Insert a queued version and return it (the caller commits); refused while another one trains."""
    busy = busy_version(session=session, lock=True)
    if busy is not None:
        raise BadUserInput(
            f"model version {busy.id} is {busy.status}; only one training runs at a time, "
            "wait for it to finish"
        )
    version = ModelVersion(
        status="queued", params=params, started_by=started_by, started_at=utcnow(), progress={"percent": 0.0}
    )
    session.add(version)
    session.flush()
    return version


def mark_running(*, session: Session, version_id: int, progress: dict[str, Any]) -> None:
    """Move a queued version to running; refused when it is no longer queued (reaped or cancelled)."""
    done = session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version_id, ModelVersion.status == "queued")
        .values(status="running", progress=progress)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise BadUserInput(f"model version {version_id} is not queued")


def record_progress(*, session: Session, version_id: int, progress: dict[str, Any]) -> None:
    session.execute(update(ModelVersion).where(ModelVersion.id == version_id).values(progress=progress))


def finish_version(*, session: Session, version_id: int, metrics: dict[str, Any], artifact_path: str) -> None:
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version_id)
        .values(status="succeeded", metrics=metrics, artifact_path=artifact_path, finished_at=utcnow())
    )


def fail_version(*, session: Session, version_id: int, error: str) -> None:
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version_id)
        .values(status="failed", error=error[:10_000], finished_at=utcnow())
    )


def get_version(*, session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"model version {version_id} does not exist")
    return version


def active_version(*, session: Session) -> ModelVersion | None:
    """Return the version that serves, if any."""
    return session.execute(select(ModelVersion).where(ModelVersion.is_active.is_(True))).scalar_one_or_none()


def list_versions(*, session: Session, limit: int = 100) -> list[ModelVersion]:
    """Return the newest versions first."""
    return list(session.execute(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)).scalars())


def set_active(*, session: Session, version_id: int, collection: str) -> None:
    """Make a succeeded version the active one, in the caller's transaction (readers see old or new)."""
    version = get_version(session=session, version_id=version_id)
    if version.status != "succeeded":
        raise BadUserInput(
            f"model version {version_id} is {version.status}; only a succeeded version can serve"
        )
    # NULL first: the unique TRUE-or-NULL column admits a single active row at any moment.
    session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=None))
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == version_id)
        .values(is_active=True, collection_name=collection)
    )
