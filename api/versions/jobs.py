"""The record of activations: who switched the active version when, and how the job that keeps
every user's list for the new version went (running, succeeded, failed, superseded)."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.db import utcnow
from api.versions.models import Activation

log = logging.getLogger(__name__)
ERROR_CHARS = 2000  # of a failed job's message kept in its row


def activations(*, session: Session, limit: int = 100) -> list[Activation]:
    """Return the newest activations first."""
    return list(session.scalars(select(Activation).order_by(Activation.id.desc()).limit(limit)))


class KeptJob:
    """Writes a kept-lists job's progress and outcome to the newest activation of its version, where
    every process and the dashboard see it; a version never activated through `activate` records nothing."""

    def __init__(self, sessions: sessionmaker, version_id: int) -> None:
        self.sessions = sessions
        query = select(Activation.id).where(Activation.version_id == version_id)
        with sessions() as session:
            self.activation_id = session.scalar(query.order_by(Activation.id.desc()).limit(1))
        self._write(kept_status="running", kept_done=0, kept_finished_at=None, kept_error=None)

    def progress(self, done: int, total: int) -> None:
        self._write(kept_done=done, kept_total=total)

    def finished(self, status: str, error: str | None = None) -> None:
        self._write(kept_status=status, kept_finished_at=utcnow(), kept_error=error and error[:ERROR_CHARS])

    def _write(self, **values: object) -> None:
        if self.activation_id is None:
            return
        try:
            with self.sessions.begin() as session:
                query = update(Activation).where(Activation.id == self.activation_id)
                session.execute(query.values(kept_updated_at=utcnow(), **values))
        except Exception as error:  # the record is for people; the job itself goes on
            log.warning("could not record the kept-lists job of activation %s: %s", self.activation_id, error)
