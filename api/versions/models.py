"""ORM row for a model version: one training run and, once built, its Milvus collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base, CreatedAtMixin, utcnow

STATUSES = ("queued", "running", "succeeded", "failed")
INTERRUPTED = "interrupted: "  # how the error of a failed run that was stopped, not broken, begins


class ModelVersion(CreatedAtMixin, Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        # TRUE or NULL: the unique constraint then admits one active version at most.
        CheckConstraint("is_active IS NULL OR is_active = 1", name="active_true_or_null"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_by: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool | None] = mapped_column(Boolean, unique=True)
    artifact_path: Mapped[str | None] = mapped_column(String(512))
    collection_name: Mapped[str | None] = mapped_column(String(128))

    @property
    def outcome(self) -> str:
        """The status as people read it: a failed run that was stopped (not broken) is "interrupted"."""
        stopped = self.status == "failed" and (self.error or "").startswith(INTERRUPTED)
        return "interrupted" if stopped else self.status


KEPT_STATUSES = ("running", "succeeded", "failed", "superseded")


class Activation(Base):
    """One switch of the active version: who made it and when, and the job that then keeps every
    user's list for the new version (api/versions/jobs.py)."""

    __tablename__ = "activations"
    __table_args__ = (
        CheckConstraint(f"kept_status IN {KEPT_STATUSES}", name="kept_status"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, index=True)  # kept after the version is deleted
    previous_version_id: Mapped[int | None] = mapped_column(Integer)
    activated_by: Mapped[str] = mapped_column(String(64))
    activated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kept_status: Mapped[str] = mapped_column(String(16), default="running")
    kept_done: Mapped[int] = mapped_column(Integer, default=0)  # users done of kept_total
    kept_total: Mapped[int] = mapped_column(Integer, default=0)
    # The job's last write: a dead job stops moving.
    kept_updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    kept_finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    kept_error: Mapped[str | None] = mapped_column(Text)


class Experiment(Base):
    """An A/B experiment: a share of users served by a treatment version instead of the active one
    (the control), each user's arm a stable hash of their id and the experiment's salt (arm_of). One
    runs at a time: `is_running` is TRUE or NULL, and unique."""

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("treatment_share > 0 AND treatment_share < 1", name="share"),
        CheckConstraint("is_running IS NULL OR is_running = 1", name="running_true_or_null"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    control_version_id: Mapped[int] = mapped_column(Integer)  # kept after a version is deleted
    treatment_version_id: Mapped[int] = mapped_column(Integer)
    treatment_share: Mapped[float] = mapped_column(Float)
    salt: Mapped[str] = mapped_column(String(32))
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: until stopped
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(255))  # why it stopped
    is_running: Mapped[bool | None] = mapped_column(Boolean, unique=True, default=True)
