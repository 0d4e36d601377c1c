"""The towers: unit vectors of the right width, unknown ids, history sensitivity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ml.config import TrainConfig
from ml.inputs import to_tensors
from ml.model import TwoTower
from ml.paddle_setup import paddle
from ml.user_predictor import UserPredictor, save_user_tower

SIZES = {"user_id": 11, "gender": 3, "age": 8, "occupation": 22, "zip": 5, "movie_id": 21, "genres": 19,
         "title": 30, "year": 6, "gap": 22}  # fmt: skip
CONFIG = TrainConfig(embedding_dim=8, hidden_dim=16, history_length=4, recent_length=2)


def _users(user_ids: list[int], history: list[list[int]], stars: list[list[int]]) -> dict[str, np.ndarray]:
    n = len(user_ids)
    return {
        "user_id": np.array(user_ids), "gender": np.ones(n, np.int64), "age": np.full(n, 3),
        "occupation": np.full(n, 5), "zip": np.full(n, 2),
        "history": np.array(history), "history_rating": np.array(stars), "gap": np.full(n, 3),
    }  # fmt: skip


def _movies(movie_ids: list[int]) -> dict[str, np.ndarray]:
    n = len(movie_ids)
    return {"movie_id": np.array(movie_ids), "genres": np.tile([1, 4, 0, 0, 0, 0], (n, 1)),
            "title": np.tile([3, 7] + [0] * 10, (n, 1)), "year": np.full(n, 2)}  # fmt: skip


def _model() -> TwoTower:
    paddle.seed(0)
    model = TwoTower(CONFIG, SIZES)
    model.eval()
    return model


def test_towers_give_unit_vectors_of_output_width() -> None:
    model = _model()
    users = model.encode_users(to_tensors(_users([1, 0], [[1, 2, 0, 0], [0, 0, 0, 0]], [[5, 3, 0, 0]] * 2)))
    movies = model.encode_movies(to_tensors(_movies([3, 0, 20])))
    assert users.shape == [2, 256] and movies.shape == [3, 256]
    np.testing.assert_allclose(np.linalg.norm(users.numpy(), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(movies.numpy(), axis=1), 1.0, rtol=1e-5)


def test_user_vector_depends_on_history_and_star_rating() -> None:
    model = _model()
    weight = model.user_tower.fields[
        5
    ].star_weight.weight  # per-star weights start equal; training separates them
    weight.set_value(np.linspace(-1, 1, 6)[:, None].repeat(3, 1).astype("float32"))
    users = model.encode_users(
        to_tensors(
            _users(
                [1, 1, 1], [[0, 0, 0, 0], [5, 0, 0, 0], [5, 0, 0, 0]], [[0] * 4, [5, 0, 0, 0], [1, 0, 0, 0]]
            )
        )
    ).numpy()
    assert not np.allclose(users[0], users[1])
    assert not np.allclose(users[1], users[2])


def test_padding_in_history_is_ignored() -> None:
    model = _model()
    users = model.encode_users(
        to_tensors(_users([2, 2], [[4, 0, 0, 0], [4, 0, 0, 0]], [[3, 0, 0, 0], [3, 5, 1, 2]]))
    ).numpy()
    np.testing.assert_allclose(users[0], users[1], rtol=1e-6)


def test_the_served_user_encoder_gives_the_towers_vectors_with_and_without_the_gap_feature(
    tmp_path: Path,
) -> None:
    inputs = _users(
        [1, 0, 10], [[1, 2, 0, 0], [0, 0, 0, 0], [5, 20, 3, 3]], [[5, 3, 0, 0], [0] * 4, [1, 2, 4, 5]]
    )
    for gap_feature in (True, False):
        paddle.seed(0)
        model = TwoTower(replace(CONFIG, gap_feature=gap_feature), SIZES)
        model.eval()
        with paddle.no_grad():
            expected = model.encode_users(to_tensors(inputs)).numpy()
        directory = tmp_path / f"gap-{gap_feature}"
        directory.mkdir()
        config = replace(CONFIG, gap_feature=gap_feature)
        save_user_tower(model, config, directory)
        saved = UserPredictor(directory, config)
        converted = UserPredictor.of_model(model, config)
        for encoder in (saved, converted):
            np.testing.assert_allclose(encoder(inputs), expected, atol=1e-6)
            np.testing.assert_allclose(
                encoder({k: v[2:] for k, v in inputs.items()}), expected[2:], atol=1e-6
            )
