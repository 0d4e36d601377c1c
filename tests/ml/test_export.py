"""Model versions: save -> load gives the same vectors; the serving encoder follows new ratings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.config import TrainConfig
from ml.encoder import HistoryItem, ModelVersion, MovieFeatures, UserFeatures
from ml.export import load_version, save_version
from ml.inputs import to_tensors
from ml.movielens.format import Dataset, load_dataset
from ml.movielens.synthetic import write_synthetic
from ml.paddle_setup import paddle
from ml.train import TrainedModel, movie_vectors, train

CONFIG = TrainConfig(
    embedding_dim=16, hidden_dim=64, epochs=2, batch_size=128, learning_rate=5e-3, gap_feature=True
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    directory = write_synthetic(
        tmp_path_factory.mktemp("synthetic"), users=300, movies=200, ratings_per_user=(20, 60)
    )
    return load_dataset(Path(directory))


@pytest.fixture(scope="module")
def trained(dataset: Dataset) -> TrainedModel:
    return train(dataset, CONFIG, progress=False)


@pytest.fixture(scope="module")
def version(
    trained: TrainedModel, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> ModelVersion:
    return load_version(save_version(trained, tmp_path_factory.mktemp("versions") / "v1", dataset=dataset))


def test_loaded_version_reproduces_the_trained_vectors(trained: TrainedModel, version: ModelVersion) -> None:
    assert version.dim == 256 and version.history_length == CONFIG.history_length
    assert version.config == CONFIG
    assert version.metrics["hr@10"] == trained.metrics["hr@10"]
    np.testing.assert_array_equal(version.movie_ids, [m for m in trained.prepared.movie_ids])
    np.testing.assert_array_equal(version.movie_vectors, movie_vectors(trained.model, trained.prepared))
    np.testing.assert_allclose(np.linalg.norm(version.movie_vectors, axis=1), 1.0, rtol=1e-5)


def test_encoder_matches_the_training_user_state(
    trained: TrainedModel, dataset: Dataset, version: ModelVersion
) -> None:
    t = trained.prepared.timeline
    position = int(t.test[0])  # the user as they were just before their latest rating
    user = dataset.users[int(t.user_row[position])]
    past = range(int(t.user_start[position]), position)
    history = [
        HistoryItem(dataset.movies[int(t.movie_row[p])].id, int(t.rating[p]), int(t.timestamp[p]))
        for p in past
    ]
    with paddle.no_grad():
        expected = trained.model.encode_users(
            to_tensors(trained.prepared.user_inputs(np.array([position]), CONFIG.history_length))
        ).numpy()[0]
    features = UserFeatures(user.gender, user.age, user.occupation, user.zip_code, user.id)
    got = version.encode_user(features, history, at=int(t.timestamp[position]))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    shuffled = version.encode_user(features, history[::-1], at=int(t.timestamp[position]))
    if len({h.timestamp for h in history}) == len(history):  # order only matters for tied timestamps
        np.testing.assert_allclose(shuffled, got, atol=1e-6)


def test_a_new_rating_moves_the_user_vector(version: ModelVersion) -> None:
    user = UserFeatures("F", 25, 4, "10001", user_id=7)
    history = [HistoryItem(3, 4, 1_000), HistoryItem(9, 5, 2_000)]
    before = version.encode_user(user, history)
    after = version.encode_user(user, [*history, HistoryItem(42, 5, 3_000)])
    assert float(before @ after) < 0.9999
    assert float(np.linalg.norm(after)) == pytest.approx(1.0, abs=1e-5)


def test_unknown_user_and_movie_get_feature_only_vectors(version: ModelVersion) -> None:
    stranger = version.encode_user(
        UserFeatures("M", 56, 13, "99999", user_id=10_000_000), [HistoryItem(5, 5, 1)]
    )
    anonymous = version.encode_user(UserFeatures("M", 56, 13, "99999"), [HistoryItem(5, 5, 1)])
    np.testing.assert_allclose(stranger, anonymous, atol=1e-6)  # unknown id == no id
    new_movie = version.encode_movie(
        MovieFeatures("Brave Harbor (2004)", 2004, ("Drama", "War"), movie_id=10_000)
    )
    assert new_movie.shape == (256,) and np.isfinite(new_movie).all()
    assert float(np.linalg.norm(new_movie)) == pytest.approx(1.0, abs=1e-5)
    batch = version.encode_users([(UserFeatures("M", 56, 13, "99999"), [HistoryItem(5, 5, 1)])] * 2)
    np.testing.assert_allclose(batch[0], anonymous, atol=1e-6)


def test_existing_version_is_never_overwritten(
    trained: TrainedModel, dataset: Dataset, tmp_path: Path
) -> None:
    target = save_version(trained, tmp_path / "v1", dataset=dataset)
    with pytest.raises(FileExistsError):
        save_version(trained, target, dataset=dataset)


def test_broken_model_leaves_no_version(trained: TrainedModel, dataset: Dataset, tmp_path: Path) -> None:
    table = trained.model.movie_tower.mlp[2].bias  # a NaN here reaches every movie vector
    saved = table.numpy().copy()
    table.set_value(np.full_like(saved, np.nan))
    try:
        with pytest.raises(ValueError, match="NaN"):
            save_version(trained, tmp_path / "v2", dataset=dataset)
    finally:
        table.set_value(saved)
    assert list(tmp_path.iterdir()) == []


def test_time_since_the_newest_rating_moves_the_user_vector(version: ModelVersion) -> None:
    user = UserFeatures("M", 35, 12, "94110", user_id=3)
    history = [HistoryItem(3, 4, 1_000_000), HistoryItem(9, 5, 1_000_060)]
    in_session = version.encode_user(user, history, at=1_000_120)
    a_month_later = version.encode_user(user, history, at=1_000_060 + 30 * 86_400)
    assert float(in_session @ a_month_later) < 0.9999


def test_a_version_saved_before_its_user_tower_graph_encodes_the_same(
    trained: TrainedModel, dataset: Dataset, version: ModelVersion, tmp_path: Path
) -> None:
    directory = save_version(trained, tmp_path / "v1", dataset=dataset)
    for name in ("user_encoder.json", "user_encoder.pdiparams"):
        (directory / name).unlink()
    older = load_version(directory)
    user, history = (
        UserFeatures("F", 25, 4, "10001", user_id=7),
        [HistoryItem(3, 4, 1_000), HistoryItem(9, 5, 2_000)],
    )
    np.testing.assert_allclose(
        older.encode_user(user, history, at=5_000), version.encode_user(user, history, at=5_000), atol=1e-6
    )
