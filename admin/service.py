"""What the dashboard reads: catalogue counts, health, and the active version's collection."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.dataimport.service import count_rows
from api.db import utcnow
from api.ratings.models import Rating
from api.vectors.store import CollectionStats, VectorStore
from api.versions.models import ModelVersion
from api.versions.service import COLLECTION_PREFIX, collection_name

log = logging.getLogger(__name__)


def counts(*, session: Session) -> dict[str, int]:
    """Return the catalogue's sizes and the ratings of the last 24 hours."""
    last_day = select(func.count()).where(Rating.rated_at >= utcnow() - timedelta(days=1))
    return {**asdict(count_rows(session=session)), "ratings_last_day": session.execute(last_day).scalar_one()}


def database_ok(*, session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "unavailable"
        log.warning("dashboard: database check failed: %s", error)
        return False
    return True


def collection_stats(*, store: VectorStore, name: str | None) -> CollectionStats | None:
    """Return the active collection's figures, or None when there is none or Milvus cannot say. One that
    says NotLoad (a restarted Milvus Lite, a roll-back) is loaded, as the first search would load it."""
    if not name:
        return None
    try:
        stats = store.stats(name)
        if stats.load_state == "NotLoad":
            store.load(name)
            stats = store.stats(name)
        return stats
    except Exception as error:  # shown as "unavailable" on the page
        log.warning("dashboard: stats of collection %s failed: %s", name, error)
        return None


@dataclass(frozen=True)
class Collection:
    name: str
    version_id: int | None
    role: str  # "active", "kept for roll-back" or "orphaned"


def collections(*, session: Session, store: VectorStore) -> list[Collection] | None:
    """Return every movies_v* collection in Milvus with its role, or None when Milvus cannot say. One no
    succeeded version owns (deleted, failed mid-build, another database's) is orphaned: nothing serves it."""
    try:
        names = [n for n in store.collections() if n.startswith(COLLECTION_PREFIX)]
    except Exception as error:
        log.warning("dashboard: listing collections failed: %s", error)
        return None
    succeeded = session.execute(select(ModelVersion).where(ModelVersion.status == "succeeded")).scalars()
    owners = {collection_name(v.id): v for v in succeeded}
    found = []
    for name in names:
        version = owners.get(name)
        role = "orphaned" if version is None else "active" if version.is_active else "kept for roll-back"
        found.append(Collection(name, version.id if version else None, role))
    return found
