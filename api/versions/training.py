"""A training run: read the database, train, save the version directory, record the outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from api.versions.models import INTERRUPTED
from api.versions.service import fail_version, finish_version, mark_running, record_progress, start_version
from api.versions.training_data import load_training_data
from ml.config import TrainConfig
from ml.training_loop import ProgressEvent

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_interrupts(reason: str) -> Iterator[None]:
    """Within, SIGTERM raises SystemExit("interrupted: <reason>"), which run_training records as its
    version's error; SIGTERM's default action would end the process and leave the version running.
    Main thread only; Paddle is imported first (it resets SIGTERM at its import): see ml.paddle_setup."""

    def interrupted(_signum: int, _frame: object) -> None:
        raise SystemExit(f"{INTERRUPTED}{reason}")

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_identity() -> dict[str, object]:
    """Return the process that trains, stored with the progress so a dead run can be told from a live one."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


class ProgressRecorder:
    """Writes training progress to the version's row, at most every `interval` seconds (and at epoch ends)."""

    def __init__(self, sessions: sessionmaker, version_id: int, *, interval: float = 1.0) -> None:
        self.sessions, self.version_id, self.interval = sessions, version_id, interval
        self.started = time.monotonic()
        self.last = float("-inf")
        # Loss and metrics by epoch: an epoch ends twice (loss, then with validation metrics), the last stays.
        self.epochs: dict[int, dict[str, float]] = {}

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.step == event.steps:  # an epoch's end
            self.epochs[event.epoch] = {"epoch": event.epoch, "loss": event.loss, **event.metrics}
        elif now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        eta = elapsed * (100.0 - event.percent) / event.percent if event.percent > 0 else None
        progress = {
            **asdict(event),
            "elapsed_s": round(elapsed, 1),
            "eta_s": eta and round(eta, 1),
            "history": list(self.epochs.values()),
            **worker_identity(),
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
    version_id: int | None = None,
) -> int:
    """Train a new version on the database's data and return its id; a failure marks it failed with
    the error text. With version_id, the run takes over that queued version (the dashboard's worker)."""
    from ml.export import save_version, version_metrics
    from ml.train import train

    started = {"percent": 0.0, **worker_identity()}
    with sessions.begin() as session:
        if version_id is None:
            version_id = start_version(session=session, params=asdict(config), started_by=started_by).id
            record_progress(session=session, version_id=version_id, progress=started)
        else:
            mark_running(session=session, version_id=version_id, progress=started)
    if on_started:
        on_started(version_id)
    try:
        with sessions() as session:
            dataset = load_training_data(session=session)
        recorder = ProgressRecorder(sessions, version_id)
        trained = train(dataset, config, callback=recorder, progress=progress_bar)
        path = save_version(trained, model_dir / f"v{version_id}")
        metrics = version_metrics(trained)
        done = {"percent": 100.0, "history": list(recorder.epochs.values()), **worker_identity()}
        artifact = str(path.resolve())
        with sessions.begin() as session:
            record_progress(session=session, version_id=version_id, progress=done)
            finish_version(session=session, version_id=version_id, metrics=metrics, artifact_path=artifact)
    except BaseException as error:
        message = str(error) or type(error).__name__
        if isinstance(error, KeyboardInterrupt):
            message = f"{INTERRUPTED}stopped from the keyboard"
        elif not (isinstance(error, SystemExit) and message.startswith(INTERRUPTED)):
            message = f"{type(error).__name__}: {message}"
        stopped = message.startswith(INTERRUPTED)  # stopped, not broken: no traceback
        log.error("training run %d failed: %s", version_id, message, exc_info=not stopped)
        with sessions.begin() as session:
            fail_version(session=session, version_id=version_id, error=message)
        raise
    return version_id
