"""Model version directories: parameters, vocabularies, config, metrics, movie vectors (ml/README.md)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ml.model import TwoTower
from ml.paddle_setup import paddle
from ml.train import TrainedModel, movie_vectors
from ml.user_predictor import save_user_tower

FORMAT = "movierec-two-tower/1"


def version_metrics(model: TrainedModel) -> dict[str, float]:
    """Return the metrics a version records: test, validation (valid_*, best epoch) and the fit's figures."""
    fit = {k: float(v) for k, v in vars(model.result).items() if k not in ("best_metrics", "history")}
    return {**model.metrics, **{f"valid_{k}": v for k, v in model.validation.items()}, **fit}


def save_version(model: TrainedModel, directory: Path) -> Path:
    """Write a model version, with a vector for every movie it was trained with, to a new directory and
    return its path; nothing is left on failure (FileExistsError, ValueError for a vector not finite)."""
    if not isinstance(model.model, TwoTower):
        raise TypeError("only the two-tower model can be exported as a model version")
    if directory.exists():
        raise FileExistsError(f"{directory} exists; model versions are never overwritten")
    directory.parent.mkdir(parents=True, exist_ok=True)
    movie_ids = model.prepared.movie_ids
    vectors = movie_vectors(model.model, model.prepared.movies)
    if not np.isfinite(vectors).all():
        raise ValueError("movie vectors contain NaN or infinity; the model is broken and was not saved")
    manifest = {
        "format": FORMAT,
        "model": "two-tower",
        "dim": int(vectors.shape[1]),
        "history_length": model.config.history_length,
        "sizes": model.prepared.sizes(),
        "movies": int(movie_ids.size),
    }
    with tempfile.TemporaryDirectory(
        prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent, ignore_cleanup_errors=True
    ) as name:
        tmp = Path(name)
        _write_json(tmp / "manifest.json", manifest)
        _write_json(tmp / "config.json", asdict(model.config))
        _write_json(tmp / "vocabularies.json", model.prepared.vocabs.to_json())
        _write_json(tmp / "metrics.json", version_metrics(model))
        paddle.save(model.model.state_dict(), str(tmp / "model.pdparams"))
        np.save(tmp / "movie_ids.npy", movie_ids)
        np.save(tmp / "movie_vectors.npy", vectors)
        save_user_tower(model.model, model.config, tmp)
        tmp.rename(directory)
    return directory


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
