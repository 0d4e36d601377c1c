"""RecBole's pre-split files for SASRec carry the product's split and each target's history; the untied
view keeps the users whose held-out rating has a second of its own. (RecBole itself is not installed
here: bench/sasrec.py runs in its own virtual environment.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.baselines.sasrec import HEADER, read_timeline, write_atomic_files
from bench.quality import untied, untied_protocol
from ml.evaluate import Protocol
from ml.split import Timeline, build_timeline
from tests.ml.conftest import synthetic_dataset


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    return build_timeline(synthetic_dataset(tmp_path_factory.mktemp("synthetic"), movies=150))


def _rows(path: Path) -> tuple[str, list[tuple[int, int, list[int]]]]:
    """Return the header and (user, item, history) rows, split as RecBole splits them (tab, then space)."""
    header, *lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rows = []
    for line in lines:
        user, item, history = line.rstrip("\n").split("\t")
        rows.append((int(user), int(item), [int(m) for m in history.split(" ")]))
    return header, rows


@pytest.mark.parametrize("max_length", [50, 7])
def test_each_row_carries_its_targets_history_as_the_split_gives_it(
    timeline: Timeline, tmp_path: Path, max_length: int
) -> None:
    folder = write_atomic_files(timeline, tmp_path, "ml", max_length)
    t = timeline
    for split, positions in (("valid", t.valid), ("test", t.test)):
        header, rows = _rows(folder / f"ml.{split}.inter")
        assert header == HEADER == "user_id:token\titem_id:token\titem_id_list:token_seq\n"
        assert len(rows) == positions.size == np.unique(t.user_row[positions]).size  # one row a user
        by_user = {user: (item, history) for user, item, history in rows}
        for p in positions:
            item, history = by_user[int(t.user_row[p])]
            assert item == t.movie_row[p]
            # everything the user rated before, oldest first, the latest max_length of it
            assert history == t.movie_row[t.user_start[p] : p].tolist()[-max_length:]
            assert 0 < len(history) <= max_length
        if split == "test":  # the test history ends with the validation rating, as the product's does
            assert all(by_user[int(t.user_row[p])][1][-1] == t.movie_row[p - 1] for p in positions)

    header, rows = _rows(folder / "ml.train.inter")
    assert header == HEADER
    held_out = set(t.valid.tolist()) | set(t.test.tolist())
    expected = [p for p in range(t.user_row.size) if p not in held_out and p > t.user_start[p]]
    assert len(rows) == len(expected)  # every training rating but each user's first (it has no history)
    for (user, item, history), p in zip(rows, expected, strict=True):
        assert (user, item) == (t.user_row[p], t.movie_row[p])
        assert history == t.movie_row[t.user_start[p] : p].tolist()[-max_length:]
        assert not held_out & set(range(t.user_start[p], p))  # no held-out rating in a training history

    back = read_timeline(folder)
    for name, array in vars(t).items():
        np.testing.assert_array_equal(getattr(back, name), array)


def test_untied_users_are_those_whose_held_out_rating_has_a_second_of_its_own() -> None:
    # user 0: validation and test in the same second; user 1: a second apart; user 2: tied, movie ids apart
    timestamp = np.array([1, 5, 5, 1, 2, 3, 7, 9, 9], dtype=np.int64)
    user_row = np.repeat(np.arange(3), 3)
    start = np.repeat([0, 3, 6], 3)
    t = Timeline(
        user_row=user_row,
        movie_row=np.array([0, 1, 2, 3, 4, 5, 6, 7, 8]),
        rating=np.full(9, 4.0, dtype=np.float32),
        timestamp=timestamp,
        user_start=start,
        train=np.array([0, 3, 6]),
        valid=np.array([1, 4, 7]),
        test=np.array([2, 5, 8]),
    )
    assert untied(t, t.test).tolist() == [False, True, False]
    assert untied(t, t.valid).tolist() == [True, True, True]
    protocol = Protocol(t, t.test, negatives=3, seed=0)
    part = untied_protocol(protocol)
    assert part.positions.tolist() == [5]
    np.testing.assert_array_equal(part.negatives, protocol.negatives[[1]])  # the same sampled negatives
