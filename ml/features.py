"""Feature vocabularies (index 0 = unknown) and the integer feature arrays the towers read."""

from __future__ import annotations

import bisect
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.config import GAP_BUCKETS, TrainConfig
from ml.movielens.format import AGE_BUCKETS, GENRES, Dataset, Movie, User

GENRE_SLOTS = 6  # genres a movie's bag holds (the model's input width): ML-1M movies have at most 6
MAX_TITLE_WORDS = 12
MAX_TEXT_TOKENS = 64  # distinct text buckets a movie's description and tags fill, tags first
_WORD_RE = re.compile(r"[a-z0-9']+")
_YEAR_SUFFIX_RE = re.compile(r"\s*\(\d{4}\)\s*$")

Arrays = dict[str, npt.NDArray[np.int64]]


@dataclass(frozen=True)
class UserFeatures:
    """A user as a request describes them; training reads a dataset's User the same way."""

    gender: str | None  # "F" or "M"; None (here and below) when unknown: the "unknown" input
    age: int | None  # an ML-1M age bucket (1, 18, 25, 35, 45, 50, 56)
    occupation: int | None  # an id of the occupations training saw (others read as unknown)
    zip_code: str | None
    user_id: int | None = None  # None or unknown to training: demographics and history only


@dataclass(frozen=True)
class MovieFeatures:
    """A movie as a request describes it; training reads a dataset's Movie the same way."""

    title: str  # as in movies.dat, "(year)" suffix optional
    year: int | None
    genres: tuple[str, ...]
    movie_id: int | None = None  # None or unknown to training: genres, year, title and text only
    description: str | None = None  # read by versions trained with text, as training read it
    tags: tuple[str, ...] = ()


class Vocab:
    """A mapping from keys to indices 1..n; every unknown key maps to 0."""

    def __init__(self, keys: Iterable[Any]) -> None:
        self.keys: list[Any] = list(dict.fromkeys(keys))
        self._index = {k: i + 1 for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        """Return the table size an embedding needs: known keys plus the unknown slot."""
        return len(self.keys) + 1

    def indices(self, keys: Iterable[Any]) -> npt.NDArray[np.int64]:
        get = self._index.get
        return np.fromiter((get(k, 0) for k in keys), dtype=np.int64)


def title_words(title: str) -> list[str]:
    """Return the lower-case words of a title without its "(1995)" suffix."""
    return _WORD_RE.findall(_YEAR_SUFFIX_RE.sub("", title).lower())


def text_tokens(description: str | None, tags: Sequence[str]) -> list[str]:
    """Return each tag whole ("tag:dark comedy"), then the lower-case words of the description."""
    words = _WORD_RE.findall(description.lower()) if description else []
    return [f"tag:{t}" for t in tags] + words


def text_bucket(token: str, buckets: int) -> int:
    """Return the bucket 1..buckets of a token by CRC-32, the same in every process (hash() is salted)."""
    return 1 + zlib.crc32(token.encode("utf-8")) % buckets


def year_bucket(year: int) -> int:
    """Return the bucket of a release year: decades before 1970, 5 years to 1990, then single years."""
    if year < 1970:
        return max(year // 10 * 10, 1920)
    if year < 1990:
        return year // 5 * 5
    return year


def gap_bucket(seconds: npt.NDArray[np.int64], has_history: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Return 1 + log2(1 + minutes since the newest rating), capped; 0 for users without history."""
    minutes = np.maximum(seconds, 0) / 60.0
    bucket = 1 + np.minimum(np.floor(np.log2(1.0 + minutes)), GAP_BUCKETS - 2).astype(np.int64)
    return np.where(has_history, bucket, 0)


def gap_bucket_of(seconds: int) -> int:
    """Return gap_bucket of one user with history without numpy's per-call cost (a request's hot path);
    equal for whole seconds, whose log2 stays far from a boundary beside either's rounding error."""
    minutes = max(seconds, 0) / 60.0
    return 1 + min(math.floor(math.log2(1.0 + minutes)), GAP_BUCKETS - 2)


def star_levels(stars: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return the whole-star level (1-5) the user tower reads: a half star reads as the star it reaches."""
    return np.clip(np.ceil(np.asarray(stars, dtype=np.float64)), 1, 5).astype(np.int64)


def zip_prefix(zip_code: str | None, length: int) -> str | None:
    """Return the leading characters of a zip code, the coarse region the user tower reads."""
    return zip_code.strip()[:length] if zip_code else None


@dataclass
class FeatureVocabularies:
    """Every vocabulary the towers need, built from training data and saved with the model."""

    user_id: Vocab
    movie_id: Vocab
    gender: Vocab
    age: Vocab
    occupation: Vocab
    zip_prefix: Vocab
    genre: Vocab
    title_word: Vocab
    year: Vocab
    zip_prefix_length: int
    gap_buckets: tuple[int, ...] = ()  # the gap buckets training saw, but 0 (empty: an older version)
    text_buckets: int = 0  # hash buckets of the movies' words and tags (0: no text feature)

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        config: TrainConfig,
        user_ids: Iterable[int],
        movie_ids: Iterable[int],
        gaps: npt.NDArray[np.int64],
    ) -> FeatureVocabularies:
        """Return vocabularies: the ids and gap buckets of training events, features from the user and
        movie lists (occupations as the users have them); the text feature only when some movie has a
        description or tags."""
        words = Counter(w for m in dataset.movies for w in set(title_words(m.title)))
        years = sorted({year_bucket(m.year) for m in dataset.movies if m.year is not None})
        zips = sorted({p for u in dataset.users if (p := zip_prefix(u.zip_code, config.zip_prefix_length))})
        occupations = sorted({u.occupation for u in dataset.users if u.occupation is not None})
        text = any(m.description or m.tags for m in dataset.movies)
        return cls(
            user_id=Vocab(sorted(int(i) for i in set(user_ids))),
            movie_id=Vocab(sorted(int(i) for i in set(movie_ids))),
            gender=Vocab(["F", "M"]),  # None, "unknown", is index 0 of every vocabulary
            age=Vocab(sorted(AGE_BUCKETS)),
            occupation=Vocab(occupations),
            zip_prefix=Vocab(zips),
            genre=Vocab(GENRES),
            title_word=Vocab(sorted(w for w, c in words.items() if c >= config.title_min_count)),
            year=Vocab(years),
            zip_prefix_length=config.zip_prefix_length,
            gap_buckets=tuple(int(b) for b in np.unique(gaps) if b),  # 0, no history, aside
            text_buckets=config.text_buckets if text else 0,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the vocabularies as JSON-ready lists of keys, and the scalars (a tuple dumps as a list)."""
        return {k: v.keys if isinstance(v, Vocab) else v for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureVocabularies:
        """Return the vocabularies saved by to_json."""
        scalars = ("zip_prefix_length", "gap_buckets", "text_buckets")  # older versions lack the last two
        values: dict[str, Any] = {k: v if k in scalars else Vocab(v) for k, v in data.items()}
        values["gap_buckets"] = tuple(values.get("gap_buckets", ()))
        return cls(**values)

    def trained_gap(self, bucket: int) -> int:
        """Return a gap bucket as one training saw: the nearest trained bucket at or below it (else the
        lowest), so that no request reads an embedding row training never updated."""
        if not self.gap_buckets or bucket == 0:
            return bucket
        below = bisect.bisect_right(self.gap_buckets, bucket) - 1
        return self.gap_buckets[max(below, 0)]

    def year_index(self, year: int | None) -> int:
        """Return the year bucket index; years past either end use the nearest known bucket."""
        if year is None or not self.year.keys:
            return 0
        return max(bisect.bisect_right(self.year.keys, year_bucket(year)), 1)  # the keys are sorted

    def user_arrays(self, user_ids: Sequence[int | None], users: Sequence[User | UserFeatures]) -> Arrays:
        """Return the static user features, one row per user: each (n,)."""
        return {
            "user_id": self.user_id.indices(user_ids),
            "gender": self.gender.indices(u.gender for u in users),
            "age": self.age.indices(u.age for u in users),
            "occupation": self.occupation.indices(u.occupation for u in users),
            "zip": self.zip_prefix.indices(zip_prefix(u.zip_code, self.zip_prefix_length) for u in users),
        }

    def movie_arrays(
        self, movie_ids: Sequence[int | None], movies: Sequence[Movie | MovieFeatures]
    ) -> Arrays:
        """Return the movie features, one row per movie: ids (n,), genres (n, 6), title (n, 12), year (n,),
        and with a text feature, text (n, 64): hash buckets of the description and tags."""
        arrays = {
            "movie_id": self.movie_id.indices(movie_ids),
            "genres": _padded((self.genre.indices(m.genres) for m in movies), GENRE_SLOTS),
            "title": _padded(
                (self.title_word.indices(title_words(m.title)) for m in movies), MAX_TITLE_WORDS
            ),
            "year": np.asarray([self.year_index(m.year) for m in movies], dtype=np.int64),
        }
        if self.text_buckets:
            tokens = (text_tokens(m.description, m.tags) for m in movies)
            buckets = (dict.fromkeys(text_bucket(t, self.text_buckets) for t in ts) for ts in tokens)
            arrays["text"] = _padded(buckets, MAX_TEXT_TOKENS)  # distinct buckets in token order
        return arrays


def _padded(rows: Iterable[Iterable[int]], width: int) -> npt.NDArray[np.int64]:
    """Return (n, width): each row's non-zero values, cut to width and 0-padded."""
    values = [[i for i in row if i][:width] for row in rows]
    out = np.zeros((len(values), width), dtype=np.int64)
    for row, found in enumerate(values):
        out[row, : len(found)] = found
    return out
