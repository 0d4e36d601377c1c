"""A training run: read the database, train, save the version directory, record the outcome."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from api.versions.service import fail_version, finish_version, record_progress, start_version
from api.versions.training_data import load_training_data
from ml.config import TrainConfig
from ml.trainer import ProgressEvent

log = logging.getLogger(__name__)


class ProgressRecorder:
    """Writes training progress to the version's row, at most every `interval` seconds (and at epoch ends)."""

    def __init__(self, sessions: sessionmaker, version_id: int, *, interval: float = 1.0) -> None:
        self.sessions, self.version_id, self.interval = sessions, version_id, interval
        self.started = time.monotonic()
        self.last = float("-inf")
        self.history: list[dict[str, float]] = []  # one entry per finished epoch: loss and metrics

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        epoch_done = event.step == event.steps
        if epoch_done:
            self.history.append({"epoch": event.epoch, "loss": event.loss, **event.metrics})
        if not epoch_done and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        eta = elapsed * (100.0 - event.percent) / event.percent if event.percent > 0 else None
        progress = {
            **asdict(event),
            "elapsed_s": round(elapsed, 1),
            "eta_s": eta and round(eta, 1),
            "history": self.history,
        }
        with self.sessions.begin() as session:
            record_progress(session=session, version_id=self.version_id, progress=progress)


def run_training(
    *,
    sessions: sessionmaker,
    model_dir: Path,
    config: TrainConfig,
    started_by: str,
    progress_bar: bool = True,
    on_started: Callable[[int], None] | None = None,
) -> int:
    """Train a new version on the database's data and return its id; the run is recorded either way.

    A failure (too little data, a NaN loss, an interruption) marks the version failed with the
    error text and leaves no version directory; the active version never changes here.
    """
    from ml.export import save_version
    from ml.train import train

    with sessions.begin() as session:
        version_id = start_version(session=session, params=config.to_dict(), started_by=started_by).id
    if on_started:
        on_started(version_id)
    try:
        with sessions() as session:
            dataset = load_training_data(session=session)
        recorder = ProgressRecorder(sessions, version_id)
        trained = train(dataset, config, callback=recorder, progress=progress_bar)
        path = save_version(trained, model_dir / f"v{version_id}", dataset=dataset)
        metrics = {
            **trained.metrics,
            "train_seconds": trained.train_seconds,
            "examples_per_second": trained.examples_per_second,
            **{f"valid_{k}": v for k, v in trained.validation.items()},
        }
        with sessions.begin() as session:
            record_progress(
                session=session,
                version_id=version_id,
                progress={"percent": 100.0, "history": recorder.history},
            )
            finish_version(
                session=session, version_id=version_id, metrics=metrics, artifact_path=str(path.resolve())
            )
    except BaseException as error:
        message = str(error) or type(error).__name__
        log.error("training run %d failed: %s\n%s", version_id, message, traceback.format_exc())
        with sessions.begin() as session:
            fail_version(session=session, version_id=version_id, error=f"{type(error).__name__}: {message}")
        raise
    return version_id
