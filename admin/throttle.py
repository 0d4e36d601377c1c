"""Slows password guessing without locking the operators out, for every worker at once (the counts
are rows in the database). Failures count per browser when it carries a device cookie (signed, given
at each sign-in), else per address, so a guesser behind the operators' shared proxy blocks only
browsers that never signed in (OWASP's "device cookie" defence)."""

from __future__ import annotations

from datetime import timedelta

from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin.models import SignInFailures
from api.db import utcnow

DEVICE_COOKIE = "movierec_admin_device"
DEVICE_DAYS = 90


class SignInThrottle:
    def __init__(self, secret: str, *, attempts: int = 5, window: float = 300.0) -> None:
        self.attempts, self.window = attempts, timedelta(seconds=window)
        self._signer = TimestampSigner(secret, salt="movierec-admin-device")

    def device_cookie(self, device: str) -> str:
        return self._signer.sign(device).decode()

    def device_of(self, cookie: str | None) -> str | None:
        """Return the device id of a cookie this service signed, None for anything else."""
        try:
            return self._signer.unsign(cookie or "", max_age=DEVICE_DAYS * 86400).decode()
        except BadSignature:
            return None

    @staticmethod
    def key(address: str, device: str | None) -> str:
        return f"device:{device}" if device else f"address:{address}"[:100]

    def retry_after(self, session: Session, key: str) -> int:
        """Return the seconds this key must wait, `attempts` failures in `window` (0: it may try now)."""
        row = session.get(SignInFailures, key)
        if row is None or row.failures < self.attempts:
            return 0
        left = row.window_started + self.window - utcnow()
        return max(0, int(left.total_seconds()) + 1)

    def failed(self, session: Session, key: str) -> None:
        """Count a failure (in the caller's transaction, locking the key's row)."""
        now = utcnow()
        row = session.execute(
            select(SignInFailures).where(SignInFailures.key == key).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            session.add(SignInFailures(key=key, failures=1, window_started=now))
        elif row.window_started + self.window <= now:
            row.failures, row.window_started = 1, now
        else:
            row.failures += 1

    def succeeded(self, session: Session, key: str) -> None:
        session.execute(delete(SignInFailures).where(SignInFailures.key == key))
