"""Tests of the ML-1M reader on small hand-written files, good and malformed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.movielens.format import MalformedDataError, parse_year
from ml.movielens.layouts import load_ml1m

USERS = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117-1234\n"
MOVIES = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Misérables, Les (1995)::Drama|Musical\n"
    "5::Untitled Experiment::Documentary\n"
)
RATINGS = "1::1::5::978300760\n1::2::3::978302109\n\n3::5::1::978301968\n2::1::4::978824291\n"


def write(directory: Path, users: str = USERS, movies: str = MOVIES, ratings: str = RATINGS) -> Path:
    """Write the three files in ML-1M's latin-1 encoding and return the directory."""
    for name, text in (("users", users), ("movies", movies), ("ratings", ratings)):
        (directory / f"{name}.dat").write_bytes(text.encode("latin-1"))
    return directory


def test_reads_users(tmp_path: Path) -> None:
    users = load_ml1m(write(tmp_path)).users
    assert [(u.id, u.gender, u.age, u.occupation, u.zip_code) for u in users] == [
        (1, "F", 1, 10, "48067"),
        (2, "M", 56, 16, "70072"),
        (3, "M", 25, 15, "55117-1234"),
    ]


def test_reads_movies_with_latin1_titles_and_years(tmp_path: Path) -> None:
    movies = load_ml1m(write(tmp_path)).movies
    assert [(m.id, m.title, m.year, m.genres) for m in movies] == [
        (1, "Toy Story (1995)", 1995, ("Animation", "Children's", "Comedy")),
        (2, "Misérables, Les (1995)", 1995, ("Drama", "Musical")),
        (5, "Untitled Experiment", None, ("Documentary",)),
    ]


def test_reads_ratings_as_arrays_in_file_order(tmp_path: Path) -> None:
    ratings = load_ml1m(write(tmp_path)).ratings
    assert len(ratings) == 4  # the blank line is skipped
    assert ratings.user_id.tolist() == [1, 1, 3, 2]
    assert ratings.movie_id.tolist() == [1, 2, 5, 1]
    assert ratings.rating.tolist() == [5, 3, 1, 4]
    assert ratings.timestamp.tolist() == [978300760, 978302109, 978301968, 978824291]
    assert ratings.rating.dtype == np.float32 and ratings.timestamp.dtype == np.int64


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("Toy Story (1995)", 1995),
        ("Shawshank Redemption, The (1994)", 1994),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", 1995),
        ("1900 (1900) ", 1900),
        ("Untitled Experiment", None),
        ("Year Inside (1995) Title", None),
    ],
)
def test_parse_year(title: str, year: int | None) -> None:
    assert parse_year(title) == year


def test_missing_file_is_named(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "movies.dat").unlink()
    with pytest.raises(FileNotFoundError, match=r"movies\.dat"):
        load_ml1m(tmp_path)


BAD_USERS = USERS + "4::M::25::15\n"
BAD_MOVIE = "1::Toy Story (1995)::Animation\n2::Heat (1995)::Action|Gunfight\n"
CASES = {
    "wrong field count": ("users.dat", 4, {"users": BAD_USERS}, "expected 5 fields"),
    "non-integer user id": (
        "users.dat",
        2,
        {"users": "1::F::1::10::48067\nx::M::56::16::7\n"},
        "user id",
    ),
    "non-integer rating": (
        "ratings.dat",
        2,
        {"ratings": "1::1::5::1\n1::2::four::2\n"},
        "integers",
    ),
    "rating 0": ("ratings.dat", 2, {"ratings": "1::1::5::1\n1::2::0::2\n"}, "rating 0"),
    "rating 6": ("ratings.dat", 4, {"ratings": "1::1::5::1\n\n1::2::3::2\n2::1::6::3\n"}, "rating 6"),
    "unknown genre": ("movies.dat", 2, {"movies": BAD_MOVIE}, "unknown genre 'Gunfight'"),
    "unknown user": ("ratings.dat", 3, {"ratings": "1::1::5::1\n2::1::4::2\n9::2::3::3\n"}, "user id 9"),
    "unknown movie": ("ratings.dat", 2, {"ratings": "1::1::5::1\n1::3::4::2\n"}, "movie id 3"),
    "duplicate pair": ("ratings.dat", 4, {"ratings": "1::1::5::1\n2::1::4::2\n\n1::1::3::3\n"}, "twice"),
}


@pytest.mark.parametrize(("name", "line", "files", "reason"), list(CASES.values()), ids=list(CASES))
def test_malformed_line_is_located(
    tmp_path: Path, name: str, line: int, files: dict[str, str], reason: str
) -> None:
    write(tmp_path, **files)
    with pytest.raises(MalformedDataError, match=reason) as caught:
        load_ml1m(tmp_path)
    assert caught.value.path.name == name
    assert caught.value.line_number == line
    assert str(caught.value).startswith(f"{tmp_path / name}:{line}: ")
