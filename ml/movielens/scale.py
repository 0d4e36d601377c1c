"""A MovieLens-25M-shaped dataset in the MovieLens CSV layout, with taste a model can learn: ML-25M may
not be redistributed, but its shape (counts, long tails, star shares, times) is what matters for scale."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.movielens.format import GENRES
from ml.movielens.synthetic import write_csv

ML25M_USERS, ML25M_MOVIES, ML25M_RATINGS = 162_541, 62_423, 25_000_095
MIN_PER_USER = 20
# ML-25M's share of each half star, 0.5 to 5.0 (its README's distribution, rounded).
STAR_SHARES = np.array([0.016, 0.032, 0.016, 0.066, 0.050, 0.197, 0.126, 0.266, 0.085, 0.146])
FIRST_TIME, LAST_TIME = 789_652_009, 1_574_327_703  # the release's first and last rating times
LATENT = 8
CHUNK = 2_000_000  # ratings scored or written at a time


@dataclass(frozen=True)
class Shape:
    users: int
    movies: int
    ratings: int

    @classmethod
    def ml25m(cls, scale: float = 1.0) -> Shape:
        """Return ML-25M's shape with every count scaled alike, above a floor that keeps it trainable."""
        users = max(10, round(ML25M_USERS * scale))
        movies = max(50, round(ML25M_MOVIES * scale))
        return cls(users, movies, max(users * MIN_PER_USER, round(ML25M_RATINGS * scale)))


def write_ml25m_shaped(directory: Path, *, scale: float = 1.0, seed: int = 0) -> Shape:
    """Write ratings.csv and movies.csv of an ML-25M-shaped dataset into directory; return its shape."""
    shape = Shape.ml25m(scale)
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    popularity = _movie_weights(rng, shape.movies)
    counts = _user_counts(rng, shape)
    users, movies = _distinct_pairs(rng, counts, popularity)
    stars = _stars(rng, users, movies, shape)
    times = _times(rng, counts)
    _write_movies(directory / "movies.csv", rng, shape.movies)
    # Chunk by chunk: every rating's fields as Python objects at once would take gigabytes.
    chunks = (
        zip((users[s : s + CHUNK] + 1).tolist(), (movies[s : s + CHUNK] + 1).tolist(),
            stars[s : s + CHUNK].astype(np.float64).tolist(), times[s : s + CHUNK].tolist(), strict=True)
        for s in range(0, users.size, CHUNK)
    )  # fmt: skip
    write_csv(
        directory / "ratings.csv", ("userId", "movieId", "rating", "timestamp"), chain.from_iterable(chunks)
    )
    return shape


def _movie_weights(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Return each movie's share of all ratings by a random rank: 1 / (rank + k)^2.15, fitted to ML-25M."""
    ranks = rng.permutation(n) + 1
    weights = 1.0 / (ranks + max(1.0, 400 * n / ML25M_MOVIES)) ** 2.15
    return weights / weights.sum()


def _user_counts(rng: np.random.Generator, shape: Shape) -> npt.NDArray[np.int64]:
    """Return each user's number of ratings: MIN_PER_USER plus a log-normal tail, summing to shape.ratings."""
    extra = rng.lognormal(mean=3.6, sigma=1.35, size=shape.users)
    extra *= (shape.ratings - MIN_PER_USER * shape.users) / extra.sum()
    cap = max(MIN_PER_USER, shape.movies // 2) - MIN_PER_USER  # nobody rates more than half the movies
    if shape.ratings > shape.users * (MIN_PER_USER + cap):
        raise ValueError(f"{shape.users} users cannot give {shape.ratings} ratings to {shape.movies} movies")
    counts = MIN_PER_USER + np.minimum(np.floor(extra).astype(np.int64), cap)
    short = shape.ratings - int(counts.sum())  # rounding and the cap: hand the rest out one by one
    while short > 0:
        room = np.flatnonzero(counts < MIN_PER_USER + cap)
        chosen = rng.choice(room, size=min(short, room.size), replace=False)
        counts[chosen] += 1
        short -= chosen.size
    return counts


def _distinct_pairs(
    rng: np.random.Generator, counts: npt.NDArray[np.int64], popularity: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Return (user, movie) index pairs sorted by user, counts[u] distinct movies for user u by popularity:
    drawn with replacement, repeats dropped, and whoever fell short draws the rest among the others."""
    n_movies = popularity.size
    users = np.repeat(np.arange(counts.size), np.ceil(counts * 1.15).astype(np.int64))
    movies = np.minimum(np.searchsorted(np.cumsum(popularity), rng.random(users.size)), n_movies - 1)
    codes = _first_distinct(rng, np.unique(users * n_movies + movies), counts, n_movies)
    short = counts - np.bincount(codes // n_movies, minlength=counts.size)
    extra = []
    for user in np.flatnonzero(short):
        have = codes[np.searchsorted(codes, user * n_movies) : np.searchsorted(codes, (user + 1) * n_movies)]
        left = np.setdiff1d(np.arange(n_movies), have % n_movies)
        chances = popularity[left] / popularity[left].sum()
        extra.append(user * n_movies + rng.choice(left, size=short[user], replace=False, p=chances))
    codes = np.sort(np.concatenate([codes, *extra]))
    return (codes // n_movies).astype(np.int32), (codes % n_movies).astype(np.int32)


def _first_distinct(
    rng: np.random.Generator, codes: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], n_movies: int
) -> npt.NDArray[np.int64]:
    """Return at most counts[u] random codes (user * n_movies + movie) of each user's, sorted."""
    owner = codes // n_movies
    order = np.lexsort((rng.random(codes.size), owner))
    starts = np.searchsorted(owner, np.arange(counts.size))
    rank = np.empty(codes.size, dtype=np.int64)
    rank[order] = np.arange(codes.size) - starts[owner[order]]
    return codes[rank < counts[owner]]


def _stars(
    rng: np.random.Generator, users: npt.NDArray[np.int32], movies: npt.NDArray[np.int32], shape: Shape
) -> npt.NDArray[np.float32]:
    """Return each rating's stars: bias plus taste, mapped by rank onto STAR_SHARES."""
    user_taste = rng.normal(size=(shape.users, LATENT)).astype(np.float32)
    movie_taste = rng.normal(size=(shape.movies, LATENT)).astype(np.float32)
    user_bias = rng.normal(scale=0.8, size=shape.users).astype(np.float32)
    movie_bias = rng.normal(scale=0.8, size=shape.movies).astype(np.float32)
    score = np.empty(users.size, dtype=np.float32)
    for start in range(0, users.size, CHUNK):
        u, m = users[start : start + CHUNK], movies[start : start + CHUNK]
        taste = np.einsum("ij,ij->i", user_taste[u], movie_taste[m]) / np.sqrt(LATENT)
        score[start : start + CHUNK] = user_bias[u] + movie_bias[m] + taste + rng.normal(size=u.size) * 0.5
    edges = np.quantile(score, np.cumsum(STAR_SHARES)[:-1])
    return ((np.searchsorted(edges, score) + 1) / 2).astype(np.float32)


def _times(rng: np.random.Generator, counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return each rating's time, within a span of its user's (most a day or two, some years)."""
    first = rng.integers(FIRST_TIME, LAST_TIME - 86_400, size=counts.size)
    span = np.minimum(np.exp(rng.uniform(np.log(600), np.log(4e8), size=counts.size)), LAST_TIME - first)
    owner = np.repeat(np.arange(counts.size), counts)
    return (first[owner] + rng.random(owner.size) * span[owner]).astype(np.int64)


def _write_movies(path: Path, rng: np.random.Generator, n: int) -> None:
    years = rng.integers(1902, 2020, size=n)
    rows = []
    for i in range(n):
        genres = rng.choice(len(GENRES), size=int(rng.integers(1, 4)), replace=False)
        rows.append((i + 1, f"Movie {i + 1} ({years[i]})", "|".join(GENRES[g] for g in sorted(genres))))
    write_csv(path, ("movieId", "title", "genres"), rows)
