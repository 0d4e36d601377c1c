"""The serving process's view of the active model: loaded once, swapped when the active version changes."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from api.versions.models import ModelVersion as VersionRow
from api.versions.service import active_version
from ml.serving import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    version_id: int
    collection: str
    model: LoadedModel
    trained_at: datetime | None
    metrics: dict[str, Any]
    rows: dict[int, int] = field(repr=False)  # movie id -> row of model.movie_vectors

    def vector_of(self, movie_id: int) -> npt.NDArray[np.float32] | None:
        """Return the trained vector of a movie, or None for a movie added after training."""
        row = self.rows.get(movie_id)
        return None if row is None else self.model.movie_vectors[row]


def load_active_model(row: VersionRow) -> ActiveModel:
    """Return the loaded model of a version row that has an artifact and a collection."""
    if not row.artifact_path or not row.collection_name:
        raise ValueError(f"model version {row.id} has no artifact or collection")
    model = LoadedModel.load(Path(row.artifact_path))
    return ActiveModel(
        version_id=row.id,
        collection=row.collection_name,
        model=model,
        trained_at=row.finished_at,
        metrics=dict(row.metrics or {}),
        rows={int(m): i for i, m in enumerate(model.movie_ids.tolist())},
    )


class ModelRegistry:
    """Answers "which model serves now?", re-reading the database at most every check_interval seconds:
    every process picks up a switch without a restart, and a request uses one consistent version."""

    def __init__(self, *, check_interval: float = 1.0) -> None:
        self.check_interval = check_interval
        self.current: ActiveModel | None = None  # as last read: what get returns while is_fresh
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def is_fresh(self) -> bool:
        """Return whether the database was read within check_interval."""
        return time.monotonic() - self._checked_at < self.check_interval

    def get(self, session: Session) -> ActiveModel | None:
        """Return the active model (None when no version is active)."""
        if self.is_fresh():
            return self.current
        with self._lock:
            if not self.is_fresh():  # another thread may have read it meanwhile
                row = active_version(session=session)
                if row is None:
                    self.current = None
                elif self.current is None or self.current.version_id != row.id:
                    log.info("loading model version %d from %s", row.id, row.artifact_path)
                    self.current = load_active_model(row)
                self._checked_at = time.monotonic()
        return self.current

    def invalidate(self) -> None:
        """Make the next get() re-read the database (after this process activated a version)."""
        self._checked_at = float("-inf")
