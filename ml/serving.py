"""A model version loaded for serving: load it once, then encode users and new movies per request."""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.config import TrainConfig
from ml.export import FORMAT
from ml.features import Arrays, FeatureVocabularies, MovieFeatures, UserFeatures, gap_bucket_of, star_levels
from ml.inputs import to_tensors
from ml.model import TwoTower
from ml.paddle_setup import paddle
from ml.user_predictor import PREFIX, UserPredictor


@dataclass(frozen=True)
class HistoryItem:
    """One of the user's past ratings."""

    movie_id: int
    rating: float  # 0.5 to 5 stars
    timestamp: int  # seconds since the epoch


@dataclass(kw_only=True, eq=False)  # eq=False: compared and hashed by identity
class LoadedModel:
    """A model version loaded from its directory: movie vectors and a user predictor; load once a process."""

    model: TwoTower
    config: TrainConfig
    vocabs: FeatureVocabularies
    movie_ids: npt.NDArray[np.int64]
    movie_vectors: npt.NDArray[np.float32]
    user_predictor: UserPredictor
    # Paddle's no_grad switches a process-wide tracer flag: one movie tower pass at a time.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.dim = int(self.movie_vectors.shape[1])
        self.history_length = self.config.history_length

    @classmethod
    def load(cls, directory: Path) -> LoadedModel:
        """Return the version saved in a directory by ml.export.save_version."""
        manifest, config_data, vocab_data = (
            json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
            for name in ("manifest", "config", "vocabularies")
        )
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{directory} holds format {manifest.get('format')!r}, expected {FORMAT!r}")
        config = TrainConfig.from_dict(config_data)
        vocabs = FeatureVocabularies.from_json(vocab_data)
        # one thread: per-request latency, no OpenMP fan-out
        paddle.base.core.set_num_threads(config.num_threads)
        model = TwoTower(config, manifest["sizes"])
        model.set_state_dict(paddle.load(str(directory / "model.pdparams")))
        model.eval()
        if (directory / f"{PREFIX}.json").exists():
            user_predictor = UserPredictor(directory, config)
        else:  # written before the user tower was saved with the version
            user_predictor = UserPredictor.of_model(model, config)
        return cls(
            model=model,
            config=config,
            vocabs=vocabs,
            movie_ids=np.load(directory / "movie_ids.npy"),
            movie_vectors=np.load(directory / "movie_vectors.npy"),
            user_predictor=user_predictor,
        )

    def encode_user(
        self, user: UserFeatures, history: Sequence[HistoryItem], *, at: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Return the user's (dim,) unit vector from demographics and their ratings (any order); `at`,
        the request's epoch seconds (default: now), is read by models with the gap feature only."""
        return self.encode_users([(user, history)], at=at)[0]

    def encode_users(
        self, users: Sequence[tuple[UserFeatures, Sequence[HistoryItem]]], *, at: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Return (len(users), dim) unit vectors, one per (features, history) pair."""
        return self.user_predictor(self.user_arrays(users, at=at))

    def user_arrays(
        self, users: Sequence[tuple[UserFeatures, Sequence[HistoryItem]]], *, at: int | None = None
    ) -> Arrays:
        """Return the user tower's input arrays for (features, history) pairs, as encode_users reads them."""
        at = int(time.time()) if at is None else at
        arrays = self.vocabs.user_arrays([u.user_id for u, _ in users], [u for u, _ in users])
        movies = np.zeros((len(users), self.history_length), dtype=np.int64)
        stars = np.zeros_like(movies)
        gap = np.zeros(len(users), dtype=np.int64)
        for row, (_, history) in enumerate(users):
            # newest first, ties by movie id as training orders them (ml.split.build_timeline)
            newest = heapq.nlargest(self.history_length, history, key=lambda h: (h.timestamp, h.movie_id))
            movies[row, : len(newest)] = self.vocabs.movie_id.indices(h.movie_id for h in newest)
            stars[row, : len(newest)] = star_levels([h.rating for h in newest])
            gap[row] = self.time_key(newest[0].timestamp if newest else None, at)
        stars[movies == 0] = 0
        return arrays | {"history": movies, "history_rating": stars, "gap": gap}

    def time_key(self, newest_rating: int | None, at: int) -> int:
        """Return all that encoding at `at` reads of the time: the gap bucket since the newest rating (0:
        no gap feature or no ratings); encodings of one user and history with equal keys are equal."""
        if not self.config.gap_feature or newest_rating is None:
            return 0
        return self.vocabs.trained_gap(gap_bucket_of(at - newest_rating))

    def encode_movie(self, movie: MovieFeatures) -> npt.NDArray[np.float32]:
        """Return the (dim,) unit vector of a movie, e.g. one added after training."""
        arrays = self.vocabs.movie_arrays([movie.movie_id], [movie])
        with self._lock, paddle.no_grad():
            return self.model.encode_movies(to_tensors(arrays)).numpy()[0]
