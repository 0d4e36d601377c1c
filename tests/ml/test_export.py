"""Model versions: save -> load gives the same vectors; the serving encoder follows new ratings."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ml.config import TrainConfig
from ml.export import save_version
from ml.features import gap_bucket_of
from ml.inputs import to_tensors
from ml.model import TwoTower
from ml.movielens.format import Dataset
from ml.movielens.layouts import load
from ml.movielens.synthetic import write_synthetic
from ml.paddle_setup import paddle
from ml.serving import HistoryItem, LoadedModel, MovieFeatures, UserFeatures
from ml.train import TrainedModel, movie_vectors, seed_everything, train

CONFIG = TrainConfig(
    embedding_dim=16, hidden_dim=64, epochs=2, batch_size=128, learning_rate=5e-3, gap_feature=True
)


@pytest.fixture(scope="module")
def trained(dataset: Dataset) -> TrainedModel:
    return train(dataset, CONFIG, progress=False)


@pytest.fixture(scope="module")
def saved(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_version(trained, tmp_path_factory.mktemp("versions") / "v1")


@pytest.fixture(scope="module")
def version(saved: Path) -> LoadedModel:
    return LoadedModel.load(saved)


def test_loaded_version_reproduces_the_trained_vectors(
    trained: TrainedModel, saved: Path, version: LoadedModel
) -> None:
    assert version.dim == 256 and version.history_length == CONFIG.history_length
    assert version.config == CONFIG
    assert json.loads((saved / "metrics.json").read_text())["hr@10"] == trained.metrics["hr@10"]
    np.testing.assert_array_equal(version.movie_ids, [m for m in trained.prepared.movie_ids])
    np.testing.assert_array_equal(
        version.movie_vectors, movie_vectors(trained.model, trained.prepared.movies)
    )
    np.testing.assert_allclose(np.linalg.norm(version.movie_vectors, axis=1), 1.0, rtol=1e-5)


def test_encoder_matches_the_training_user_state(
    trained: TrainedModel, dataset: Dataset, version: LoadedModel
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
    np.testing.assert_allclose(shuffled, got, atol=1e-6)  # one order, ties included


@pytest.mark.parametrize(
    "options",
    [{"gap_feature": False}, {"gap_feature": True}, {"gap_feature": True, "mask_rated": False}],
    ids=["default", "gap-feature", "gap-feature-unmasked"],
)
def test_every_user_tower_option_serves_what_it_trained(
    options: dict[str, object], dataset: Dataset, tmp_path: Path
) -> None:
    config = dataclasses.replace(CONFIG, epochs=1, **options)  # type: ignore[arg-type]
    trained = train(dataset, config, progress=False)
    version = LoadedModel.load(save_version(trained, tmp_path / "v1"))
    t = trained.prepared.timeline
    for position in (int(p) for p in t.test[:5]):
        user = dataset.users[int(t.user_row[position])]
        history = [
            HistoryItem(dataset.movies[int(t.movie_row[p])].id, int(t.rating[p]), int(t.timestamp[p]))
            for p in range(int(t.user_start[position]), position)
        ]
        with paddle.no_grad():
            expected = trained.model.encode_users(
                to_tensors(trained.prepared.user_inputs(np.array([position]), config.history_length))
            ).numpy()[0]
        features = UserFeatures(user.gender, user.age, user.occupation, user.zip_code, user.id)
        np.testing.assert_allclose(
            version.encode_user(features, history, at=int(t.timestamp[position])), expected, atol=1e-5
        )
        if not config.gap_feature:
            later = version.encode_user(features, history, at=int(t.timestamp[position]) + 10 * 365 * 86_400)
            np.testing.assert_array_equal(later, version.encode_user(features, history, at=1))  # no clock
            assert version.time_key(int(t.timestamp[position - 1]), 2_000_000_000) == 0
    empty = version.encode_user(UserFeatures("F", 25, 4, "10001"), [])  # no ratings: masked, not NaN
    assert np.isfinite(empty).all() and np.linalg.norm(empty) == pytest.approx(1.0, rel=1e-4)


def test_tied_ratings_are_served_in_the_order_training_saw_them(
    dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Many ratings share a second (MovieLens): the histories of users whose ratings all fall in a
    few hours encode the same through the serving encoder, in any order given, as evaluation reads
    them (training shuffles ties each epoch)."""
    hourly = dataclasses.replace(dataset.ratings, timestamp=dataset.ratings.timestamp // 3600 * 3600)
    tied = dataclasses.replace(dataset, ratings=hourly)
    config = dataclasses.replace(CONFIG, epochs=1)
    trained = train(tied, config, progress=False)
    version = LoadedModel.load(save_version(trained, tmp_path_factory.mktemp("tied") / "v1"))
    t = trained.prepared.timeline
    checked = 0
    for position in (int(p) for p in t.test[:40]):
        past = range(int(t.user_start[position]), position)
        history = [
            HistoryItem(tied.movies[int(t.movie_row[p])].id, int(t.rating[p]), int(t.timestamp[p]))
            for p in past
        ]
        if len({h.timestamp for h in history[-config.history_length :]}) == len(
            history[-config.history_length :]
        ):
            continue  # no tie among what the model reads
        user = tied.users[int(t.user_row[position])]
        with paddle.no_grad():
            expected = trained.model.encode_users(
                to_tensors(trained.prepared.user_inputs(np.array([position]), config.history_length))
            ).numpy()[0]
        features = UserFeatures(user.gender, user.age, user.occupation, user.zip_code, user.id)
        at = int(t.timestamp[position])
        for order in (history, history[::-1], sorted(history, key=lambda h: -h.movie_id)):
            np.testing.assert_allclose(version.encode_user(features, order, at=at), expected, atol=1e-6)
        checked += 1
    assert checked >= 5


def test_no_request_reads_a_gap_row_training_never_updated(
    trained: TrainedModel, version: LoadedModel
) -> None:
    """A user whose newest rating is 30 years old (old data served today): the raw gap bucket is one
    no training event had, whose embedding row is still at its initial value; the encoder reads the
    nearest trained bucket instead, whose row training moved."""
    gaps = trained.prepared.vocabs.gap_buckets
    raw = gap_bucket_of(30 * 365 * 86_400)
    assert gaps and raw not in gaps
    seed_everything(CONFIG)
    initial = _gap_table(TwoTower(CONFIG, trained.prepared.sizes()))
    learned = _gap_table(trained.model)
    np.testing.assert_array_equal(learned[raw], initial[raw])  # never trained: as initialised
    history = [HistoryItem(3, 4, 1_000_000)]
    anonymous = UserFeatures(None, None, None, None)
    used = int(version.user_arrays([(anonymous, history)], at=1_000_000 + 30 * 365 * 86_400)["gap"][0])
    assert used in gaps and used == max(gaps)
    assert not np.array_equal(learned[used], initial[used])
    assert version.time_key(1_000_000, 1_000_000 + 30 * 365 * 86_400) == used
    assert max(gaps) <= CONFIG.gap_cap  # longer gaps trained the cap bucket itself


def test_a_user_back_after_years_encodes_as_one_back_after_weeks(version: LoadedModel) -> None:
    """Every gap from 2^14 minutes (11.4 days) up reads the one "long ago" bucket training filled."""
    user = UserFeatures("M", 35, 7, "55455", user_id=11)
    history = [HistoryItem(5, 4, 1_000_000), HistoryItem(8, 2, 1_000_500)]
    weeks = version.encode_user(user, history, at=1_000_500 + 20 * 86_400)
    years = version.encode_user(user, history, at=1_000_500 + 30 * 365 * 86_400)
    np.testing.assert_array_equal(weeks, years)
    assert version.time_key(1_000_500, 1_000_500 + 20 * 86_400) == version.time_key(1_000_500, 2_000_000_000)
    assert not np.array_equal(version.encode_user(user, history, at=1_000_560), weeks)  # a minute later


def _gap_table(model: TwoTower) -> np.ndarray:
    field = next(layer for layer in model.sublayers() if getattr(layer, "key", None) == "gap")
    return field.table.weight.numpy()


def test_a_new_rating_moves_the_user_vector(version: LoadedModel) -> None:
    user = UserFeatures("F", 25, 4, "10001", user_id=7)
    history = [HistoryItem(3, 4, 1_000), HistoryItem(9, 5, 2_000)]
    before = version.encode_user(user, history)
    after = version.encode_user(user, [*history, HistoryItem(42, 5, 3_000)])
    assert float(before @ after) < 0.9999
    assert float(np.linalg.norm(after)) == pytest.approx(1.0, abs=1e-5)


def test_unknown_user_and_movie_get_feature_only_vectors(version: LoadedModel) -> None:
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


def test_training_and_saving_a_version_print_nothing_but_errors(tmp_path: Path) -> None:
    """Paddle's notices come from C++ as well as Python, so a process of its own, whose output is read
    whole: a clean run prints no Paddle notice, and an error after it is still printed."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from ml.config import TrainConfig
        from ml.export import save_version
        from ml.movielens.layouts import load_ml1m
        from ml.movielens.synthetic import write_synthetic
        from ml.train import train
        data = load_ml1m(write_synthetic(Path({str(tmp_path)!r}) / "data", users=60, movies=80))
        config = TrainConfig(embedding_dim=8, hidden_dim=16, epochs=1, batch_size=64, gap_feature=True)
        save_version(train(data, config, progress=False), Path({str(tmp_path)!r}) / "v1")
        TrainConfig(batch_size=1)
    """)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root
    )
    output = run.stdout + run.stderr
    assert (tmp_path / "v1" / "user_encoder.json").exists(), output
    assert "batch_size must be at least 2" in run.stderr and run.returncode == 1, output
    assert "PIR" not in output and "ccache" not in output, output


def test_existing_version_is_never_overwritten(trained: TrainedModel, tmp_path: Path) -> None:
    target = save_version(trained, tmp_path / "v1")
    with pytest.raises(FileExistsError):
        save_version(trained, target)


def test_broken_model_leaves_no_version(trained: TrainedModel, tmp_path: Path) -> None:
    table = trained.model.movie_tower.mlp[2].bias  # a NaN here reaches every movie vector
    saved = table.numpy().copy()
    table.set_value(np.full_like(saved, np.nan))
    try:
        with pytest.raises(ValueError, match="NaN"):
            save_version(trained, tmp_path / "v2")
    finally:
        table.set_value(saved)
    assert list(tmp_path.iterdir()) == []


def test_time_since_the_newest_rating_moves_the_user_vector(version: LoadedModel) -> None:
    user = UserFeatures("M", 35, 12, "94110", user_id=3)
    history = [HistoryItem(3, 4, 1_000_000), HistoryItem(9, 5, 1_000_060)]
    in_session = version.encode_user(user, history, at=1_000_120)
    a_month_later = version.encode_user(user, history, at=1_000_060 + 30 * 86_400)
    assert float(in_session @ a_month_later) < 0.9999


def test_a_version_saved_before_its_user_tower_graph_encodes_the_same(
    trained: TrainedModel, version: LoadedModel, tmp_path: Path
) -> None:
    directory = save_version(trained, tmp_path / "v1")
    for name in ("user_encoder.json", "user_encoder.pdiparams"):
        (directory / name).unlink()
    older = LoadedModel.load(directory)
    user, history = (
        UserFeatures("F", 25, 4, "10001", user_id=7),
        [HistoryItem(3, 4, 1_000), HistoryItem(9, 5, 2_000)],
    )
    np.testing.assert_allclose(
        older.encode_user(user, history, at=5_000), version.encode_user(user, history, at=5_000), atol=1e-6
    )


def test_unknown_demographics_read_rows_training_moved(trained: TrainedModel, version: LoadedModel) -> None:
    """Every training user has demographics here; the "unknown" rows (index 0) that a user without
    them reads were still trained (demographic_dropout), not left at their initial values."""
    seed_everything(CONFIG)
    initial = TwoTower(CONFIG, trained.prepared.sizes())
    for key in ("gender", "age", "occupation", "zip"):
        learned, fresh = (_table(m, key)[0] for m in (trained.model, initial))
        assert not np.array_equal(learned, fresh), key
    unknown = UserFeatures(None, None, None, None, user_id=None)
    vector = version.encode_user(unknown, [HistoryItem(3, 4, 1_000_000)], at=1_000_060)
    assert np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1) < 1e-4


def _table(model: TwoTower, key: str) -> np.ndarray:
    field = next(layer for layer in model.sublayers() if getattr(layer, "key", None) == key)
    return field.table.weight.numpy()


def test_data_without_text_trains_no_text_field(trained: TrainedModel, version: LoadedModel) -> None:
    assert CONFIG.text_buckets > 0  # on, but ML-1M's files have no text
    assert "text" not in trained.prepared.sizes() and "text" not in trained.prepared.movies
    assert version.vocabs.text_buckets == 0
    assert not any(getattr(layer, "key", None) == "text" for layer in version.model.sublayers())


def test_a_movie_with_text_is_served_the_vector_training_gave_it(tmp_path: Path) -> None:
    directory = write_synthetic(
        tmp_path / "data", users=150, movies=120, ratings_per_user=(20, 40), text=True
    )
    dataset = load(directory).dataset
    config = dataclasses.replace(CONFIG, epochs=1, gap_feature=False, text_buckets=97)
    trained = train(dataset, config, progress=False)
    assert trained.prepared.sizes()["text"] == 98
    version = LoadedModel.load(save_version(trained, tmp_path / "v1"))
    assert version.vocabs.text_buckets == 97
    row, movie = next((i, m) for i, m in enumerate(dataset.movies) if m.description and m.tags)
    training_side = movie_vectors(trained.model, trained.prepared.movies)[row]
    np.testing.assert_array_equal(version.movie_vectors[row], training_side)  # exported for Milvus
    features = MovieFeatures(movie.title, movie.year, movie.genres, movie.id, movie.description, movie.tags)
    np.testing.assert_allclose(version.encode_movie(features), training_side, atol=1e-6)  # served
    # the vector reads the text: without it, or with another movie's, it is another vector
    bare = version.encode_movie(dataclasses.replace(features, description=None, tags=()))
    other = next(m for m in dataset.movies if m.description and m.description != movie.description)
    swapped = version.encode_movie(dataclasses.replace(features, description=other.description))
    assert float(bare @ training_side) < 0.9999 and float(swapped @ training_side) < 0.9999


def test_occupations_a_dataset_names_are_trained_saved_and_served(dataset: Dataset, tmp_path: Path) -> None:
    """Occupation ids past ML-1M's, as an import of a dataset's own occupations gives them: the
    vocabulary is the users' occupations, and a served user with one reads it, not "unknown"."""
    ids = {u.occupation: 100 + u.occupation for u in dataset.users if u.occupation is not None}
    renamed = dataclasses.replace(
        dataset,
        users=[dataclasses.replace(u, occupation=ids.get(u.occupation)) for u in dataset.users],
        occupations={new: f"job {new}" for new in ids.values()},
    )
    model = train(renamed, dataclasses.replace(CONFIG, epochs=1), progress=False)
    assert model.prepared.users["occupation"].all()  # every user's occupation is known to the model
    served = LoadedModel.load(save_version(model, tmp_path / "v"))
    assert served.vocabs.occupation.keys == sorted(set(ids.values()))
    known = max(ids.values())
    one, unknown = (served.encode_user(UserFeatures("F", 25, o, None), []) for o in (known, None))
    assert not np.allclose(one, unknown)
