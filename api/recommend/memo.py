"""Recommendations kept per user while nothing they are computed from changes.

A user's recommendations are a pure function of the active model version, the user's
demographics and ratings, the catalogue of movies in the collection, the request's arguments
and, for models that read it, the time since the user's newest rating (in log2 buckets). The
key holds all of these but the time: the user's ratings version (bumped in the transaction of
every rating change, api/users/models.py) and the catalogue's newest movie id are read from the
database on every request, so a hit is exactly what recomputing would return, whichever process
wrote the change. The time bucket is checked on use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter

LOOKUPS = Counter("movierec_recommendation_cache_total", "Recommendation cache lookups", ["result"])
HITS, MISSES = LOOKUPS.labels("hit"), LOOKUPS.labels("miss")

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    time_key: int  # the model's view of the time when computed (ModelVersion.time_key)
    newest_rating: int | None  # epoch seconds of the user's newest rating then
    value: T


class RecommendationMemo(Generic[T]):
    """A thread-safe LRU map of at most `capacity` entries; capacity 0 keeps nothing."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Entry[T]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, time_key: Callable[[int | None], int]) -> T | None:
        """Return the value kept for key if the model's view of the time is still the one it had.

        time_key(newest_rating) gives that view now (ModelVersion.time_key at the request's time).
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None or entry.time_key != time_key(entry.newest_rating):
            MISSES.inc()
            return None
        HITS.inc()
        return entry.value

    def put(self, key: Hashable, entry: Entry[T]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
