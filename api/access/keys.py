"""API keys, `mrk_<key id>_<secret>`: created with scopes, shown once, revocable. The secret is stored
as its SHA-256, a fast hash unlike a password's, as nobody can guess 256 random bits however fast."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.access.models import ApiKey
from api.access.scopes import SCOPES
from api.db import utcnow
from api.errors import BadUserInput, NotFound

PREFIX = "mrk_"
KEY_CACHE_S = 10.0  # a revoked key, and every token it minted, stops working within this on every worker
KEY_ID = re.compile(r"[0-9a-f]{12}")  # what create_key makes


@dataclass(frozen=True)
class LiveKey:
    """A key that is not revoked: what it may do, and the hash its secret must match."""

    key_id: str
    scopes: frozenset[str]
    secret_sha256: str

    def opens_with(self, secret: str) -> bool:
        """Return whether the secret is this key's."""
        return hmac.compare_digest(self.secret_sha256, _digest(secret))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(*, session: Session, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Add a key and return its row and the whole key, which is shown this once."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise BadUserInput("a key's name must be 1 to 100 characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise BadUserInput(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)  # KEY_ID
    ordered = " ".join(s for s in SCOPES if s in scopes)
    row = ApiKey(key_id=key_id, secret_sha256=_digest(secret), name=name, scopes=ordered)
    session.add(row)
    session.flush()
    return row, f"{PREFIX}{key_id}_{secret}"


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.execute(select(ApiKey).order_by(ApiKey.id.desc())).scalars())


def revoke_key(*, session: Session, key_id: str) -> ApiKey:
    """Revoke a key: it and its tokens stop within KEY_CACHE_S on every worker; NotFound if unknown."""
    row = session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def is_key_id(text: str) -> bool:
    """Return whether text is shaped like a key id (anything else names no key, unread)."""
    return KEY_ID.fullmatch(text) is not None


def split_key(presented: str) -> tuple[str, str] | None:
    """Return (key id, secret) of something shaped like a key, else None."""
    if not presented.startswith(PREFIX) or len(presented) > 100:
        return None
    key_id, _, secret = presented[len(PREFIX) :].partition("_")
    return (key_id, secret) if is_key_id(key_id) and secret else None


def record_use(*, session: Session, key_id: str) -> None:
    session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=utcnow()))
