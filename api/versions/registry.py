"""The serving process's view of the active model, and of a running experiment's treatment model: each
loaded once, swapped when the database says another version serves."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from api.db import utcnow
from api.versions.models import Experiment
from api.versions.models import ModelVersion as VersionRow
from api.versions.service import active_version, get_version, running_experiment
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


def arm_of(user_id: int, salt: str, treatment_share: float) -> str:
    """Return a user's arm in an experiment: a hash of the user id and the experiment's own salt, so
    that it never flips and two experiments split users independently."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return "treatment" if int.from_bytes(digest, "big") < treatment_share * 2**64 else "control"


@dataclass(frozen=True)
class RunningExperiment:
    id: int
    salt: str
    treatment_share: float
    control_version_id: int
    treatment: ActiveModel

    def arm(self, user_id: int) -> str:
        return arm_of(user_id, self.salt, self.treatment_share)


class Serving(NamedTuple):
    """The model that serves a user, and their arm when an experiment runs."""

    model: ActiveModel
    experiment: RunningExperiment | None = None
    arm: str | None = None


def is_serving(row: Experiment, active: VersionRow | None) -> bool:
    """Whether a running experiment's row splits users now: not past its end, its control still active."""
    ends = row.ends_at
    return active is not None and active.id == row.control_version_id and (ends is None or ends > utcnow())


class ModelRegistry:
    """Answers "which model serves now?", re-reading the database at most every check_interval seconds:
    every process picks up a switch without a restart, and a request uses one consistent version."""

    def __init__(self, *, check_interval: float = 1.0) -> None:
        self.check_interval = check_interval
        self.current: ActiveModel | None = None  # as last read: what get returns while is_fresh
        self.experiment: RunningExperiment | None = None  # the running experiment, as last read
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def is_fresh(self) -> bool:
        """Return whether the database was read within check_interval."""
        return time.monotonic() - self._checked_at < self.check_interval

    def get(self, session: Session) -> ActiveModel | None:
        """Return the active model (None when no version is active); the running experiment is read
        with it (`experiment`)."""
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
                self.experiment = self._read_experiment(session, row)
                self._checked_at = time.monotonic()
        return self.current

    def _read_experiment(self, session: Session, active: VersionRow | None) -> RunningExperiment | None:
        row = running_experiment(session=session)
        if row is None or not is_serving(row, active):
            return None
        now = self.experiment
        if now is not None and now.id == row.id:
            return now
        log.info("experiment %d: loading treatment version %d", row.id, row.treatment_version_id)
        treatment = load_active_model(get_version(session=session, version_id=row.treatment_version_id))
        return RunningExperiment(row.id, row.salt, row.treatment_share, row.control_version_id, treatment)

    def for_user(self, user_id: int | None) -> Serving | None:
        """Return what serves a user as last read (None before a version is active): the active model,
        or in an experiment the model of the user's arm (a visitor or a movie: the active one)."""
        active, experiment = self.current, self.experiment
        if active is None or experiment is None or user_id is None:
            return None if active is None else Serving(active)
        arm = experiment.arm(user_id)
        return Serving(experiment.treatment if arm == "treatment" else active, experiment, arm)

    def invalidate(self) -> None:
        """Make the next get() re-read the database (after this process activated a version)."""
        self._checked_at = float("-inf")
