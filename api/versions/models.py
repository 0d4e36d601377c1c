"""ORM row for a model version: one training run and, once built, its Milvus collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base, CreatedAtMixin

STATUSES = ("queued", "running", "succeeded", "failed")


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
