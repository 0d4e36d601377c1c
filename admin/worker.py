"""Training in a worker process: queue a version, spawn a low-priority process that trains it, and mark
runs whose worker is gone as interrupted."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from dataclasses import asdict, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api.db import make_engine, make_session_factory, utcnow
from api.settings import Settings
from api.state import AppState
from api.versions.models import INTERRUPTED, ModelVersion
from api.versions.service import fail_version, queue_version
from api.versions.training import run_training, sigterm_interrupts
from ml.config import TrainConfig

log = logging.getLogger(__name__)

NICENESS = 10  # the API keeps the CPU it needs; training takes what is left
WORKER_PREFIX = "movierec-train-v"
QUEUE_GRACE = timedelta(minutes=2)  # a queued run without a worker after this is given up
WORKER_GONE = f"{INTERRUPTED}the training worker stopped before the run finished"


def start_training(*, state: AppState, config: TrainConfig, started_by: str) -> int:
    """Queue a version, start its worker process and return the version's id; BadUserInput while
    another version is queued or running (queue_version locks the busy rows)."""
    config = replace(config, num_threads=1)
    with state.sessions.begin() as session:
        version_id = queue_version(session=session, params=asdict(config), started_by=started_by).id
    # spawn, not fork: the web process holds gRPC (Milvus) and Paddle state a fork would copy half-alive.
    process = multiprocessing.get_context("spawn").Process(
        target=train_worker,
        args=(state.settings.model_dump(), version_id, config, started_by),
        name=f"{WORKER_PREFIX}{version_id}",
        daemon=True,  # stopping the service stops its training; the run is then marked interrupted
    )
    try:
        process.start()
    except BaseException as error:
        with state.sessions.begin() as session:
            fail_version(session=session, version_id=version_id, error=f"worker did not start: {error}")
        raise

    def reap() -> None:
        """Wait for the worker; a run it left queued or running (killed, crashed) is marked failed."""
        process.join()
        with state.sessions.begin() as session:
            version = session.get(ModelVersion, version_id)
            if version is not None and version.status in ("queued", "running"):
                error = f"{WORKER_GONE} (exit code {process.exitcode})"
                fail_version(session=session, version_id=version_id, error=error)

    threading.Thread(target=reap, daemon=True).start()
    log.info("training version %d in worker process %s", version_id, process.pid)
    return version_id


def stop_training() -> None:
    """Stop this process's training workers (the service is stopping); each marks its run failed."""
    for process in multiprocessing.active_children():
        if process.name.startswith(WORKER_PREFIX):
            log.warning("stopping training worker %s", process.name)
            process.terminate()
            process.join(10)


def train_worker(settings_data: dict[str, Any], version_id: int, config: TrainConfig, by: str) -> None:
    """Entry point of the worker process: low priority, one compute thread, its own database engine."""
    os.nice(NICENESS)
    os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1"))
    # force: importing Paddle gave the root logger a handler of its own, in its own format.
    fmt = "%(asctime)s train-worker %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, force=True)

    # Settings travel as a dict: a pickled copy would bring the resolved_* values it had cached.
    settings = Settings.model_validate(settings_data)
    engine = make_engine(settings.resolved_database_url)
    try:
        with sigterm_interrupts("the service stopped while it trained"):  # stop_training's terminate()
            run_training(  # records success or failure (with the error text) on the version's row
                sessions=make_session_factory(engine),
                model_dir=settings.resolved_model_dir,
                config=config,
                started_by=by,
                progress_bar=False,
                version_id=version_id,
            )
    except Exception as error:
        log.info("training version %d failed: %s", version_id, error)
    finally:
        engine.dispose()


def reap_interrupted(state: AppState) -> None:
    """Mark failed every queued or running version whose worker on this host is gone (at start-up)."""
    host = socket.gethostname()
    reaped = []
    try:
        with state.sessions.begin() as session:
            busy = session.execute(
                select(ModelVersion).where(ModelVersion.status.in_(("queued", "running"))).with_for_update()
            ).scalars()
            for version in busy:
                progress = version.progress or {}
                pid = progress.get("pid")
                if progress.get("host", host) != host or (isinstance(pid, int) and _alive(pid)):
                    continue
                just_queued = version.started_at is not None and utcnow() - version.started_at < QUEUE_GRACE
                if pid is None and just_queued:
                    continue  # another web process is starting its worker right now
                fail_version(session=session, version_id=version.id, error=WORKER_GONE)
                reaped.append(version.id)
    except Exception as error:  # a database that is down must not stop the API from starting
        log.warning("dashboard: could not check for interrupted training runs: %s", error)
        return
    if reaped:
        log.warning("marked interrupted training runs as failed: %s", reaped)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True
