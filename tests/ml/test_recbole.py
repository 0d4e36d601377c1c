"""RecBole's atomic files, from tiny files written here in that layout: detected, the fields the product
knows read (half stars, float seconds, space-separated genres, occupations as named), every other field
left out with a note, and a bad row refused at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.movielens.format import MalformedDataError
from ml.movielens.layouts import detect, load
from ml.movielens.recbole import MAX_LINE

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t5\t978300760\n"
    "1\t11\t3.5\t978302109.0\n"
    "2\t10\t1.0\t978301968.75\n"
    "3\t11\t4\t978300275\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\tdirector:token\n"
    "10\tToy Story\t1995\tAnimation Children's Comedy\tLasseter\n"
    "11\tHeat\t\tAction Crime Thriller IMAX\tMann\n"
)
USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "1\t24\tM\tlibrarian\t85711\n"  # ML-100K: age in years, occupation by name
    "2\t1\tF\t10\t48067\n"  # ML-1M: the age bucket and occupation code
    "3\t\t\tartist\t\n"
)


def recbole(directory: Path, files: dict[str, str | bytes] | None = None, name: str = "ml") -> Path:
    """Write NAME.inter, NAME.item and NAME.user (None leaves a file out) into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, str | bytes | None] = {"inter": INTER, "item": ITEM, "user": USER, **(files or {})}
    for suffix, text in chosen.items():
        if isinstance(text, bytes):
            (directory / f"{name}.{suffix}").write_bytes(text)
        elif text is not None:
            (directory / f"{name}.{suffix}").write_text(text, encoding="utf-8")
    return directory


def test_atomic_files_are_detected_and_read_with_their_fields(tmp_path: Path) -> None:
    loaded = load(recbole(tmp_path))
    assert loaded.layout.name == "recbole" and detect(tmp_path).name == "recbole"
    data = loaded.dataset
    names = data.occupations
    users = {u.id: (u.gender, u.age, None if u.occupation is None else names[u.occupation], u.zip_code)
             for u in data.users}  # fmt: skip
    assert users == {
        1: ("M", 18, "librarian", "85711"),  # a name of its own
        2: ("F", 1, "K-12 student", "48067"),  # ML-1M's code 10
        3: (None, None, "artist", None),  # a name ML-1M has keeps ML-1M's code
    }
    assert data.users[2].occupation == 2
    movies = {m.id: (m.title, m.year, m.genres) for m in data.movies}
    assert movies == {
        10: ("Toy Story", 1995, ("Animation", "Children's", "Comedy")),
        11: ("Heat", None, ("Action", "Crime", "Thriller")),
    }
    assert data.ratings.rating.tolist() == [5.0, 3.5, 1.0, 4.0]
    assert data.ratings.timestamp.tolist() == [978300760, 978302109, 978301968, 978300275]
    assert loaded.notes == [
        "ml.item: field director:token is not read",
        "ml.item: genres not among the 18 left out: IMAX (1 movies)",
    ]


def test_without_a_user_file_the_raters_are_the_users(tmp_path: Path) -> None:
    loaded = load(recbole(tmp_path, {"user": None}), "recbole")
    assert [(u.id, u.gender, u.age, u.occupation) for u in loaded.dataset.users] == [
        (1, None, None, None),
        (2, None, None, None),
        (3, None, None, None),
    ]
    assert "no ml.user: the raters are the users, their demographics unknown" in loaded.notes


def test_other_field_names_recbole_uses_are_read_and_unknown_ones_noted(tmp_path: Path) -> None:
    item = "item_id:token\ttitle:token\tyear:float\tclass:token_seq\tprice:float\n10\tHeat (1995)\t\tChildren\t9.5\n"
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\treview_id:token\n7\t10\t2\t0\tr1\n"
    loaded = load(recbole(tmp_path, {"item": item, "inter": inter, "user": None}))
    assert [(m.title, m.year, m.genres) for m in loaded.dataset.movies] == [
        ("Heat (1995)", 1995, ("Children's",))
    ]
    assert "ml.item: field price:float is not read" in loaded.notes
    assert "ml.inter: field review_id:token is not read" in loaded.notes


def test_a_line_that_is_not_utf8_is_read_as_latin1_and_said(tmp_path: Path) -> None:
    item = ITEM.encode() + "12\tCité des enfants perdus, La\t1995\tAdventure\tJeunet\n".encode("latin-1")
    loaded = load(recbole(tmp_path, {"item": item}))
    assert loaded.dataset.movies[-1].title == "Cité des enfants perdus, La"
    assert "ml.item: 1 lines are not UTF-8, read as Latin-1" in loaded.notes


BAD = [
    ("inter", INTER + "4\t10\t6\t978300760\n", "ml.inter:6: rating 6 is not 0.5 to 5 stars"),
    ("inter", INTER + "4\t10\tnan\t978300760\n", "ml.inter:6: rating nan is not 0.5 to 5 stars"),
    ("inter", INTER + "4\t10\t4\tyesterday\n", "ml.inter:6: timestamp is not a number of seconds"),
    ("inter", INTER + "4\t10\t4\t-1\n", "ml.inter:6: timestamp -1 is not seconds from 1970 to 9999"),
    ("inter", INTER + "4\t10\t4\tinf\n", "ml.inter:6: timestamp inf is not seconds"),
    ("inter", INTER + "1\t10\t4\n", "ml.inter:6: expected 4 tab-separated fields, found 3"),
    ("inter", INTER + "x1\t10\t4\t0\n", "ml.inter:6: user id is not a whole number: 'x1'"),
    ("inter", INTER + "1\t99\t4\t0\n", "ml.inter:6: movie id 99 is not defined"),
    ("inter", INTER + "9\t10\t4\t0\n", "ml.inter:6: user id 9 is not defined"),
    ("inter", INTER + "1\t10\t4\t0\n", "ml.inter:6: the same user rates the same movie twice"),
    ("inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t10\t0\n", "ml.inter:1: the header lacks rating"),
    ("inter", "user_id\titem_id:token\n", "ml.inter:1: field 'user_id' is not name:type"),
    ("inter", "user_id:token\tuser_id:float\n", "ml.inter:1: field 'user_id' repeats"),
    ("inter", "user_id:token\t" * 101 + "\n", "ml.inter:1: the header has 102 fields, at most 100"),
    ("inter", INTER + "1\t" + "1" * (MAX_LINE + 10) + "\t4\t0\n", f"ml.inter:6: the line is longer than {MAX_LINE}"),
    ("item", ITEM + "10\tAgain\t1995\tDrama\tx\n", "ml.item:4: item id 10 repeats"),
    ("item", ITEM + "12\t\t1995\tDrama\tx\n", "ml.item:4: title is empty"),
    ("item", ITEM + "12\tLater\t20000\tDrama\tx\n", "ml.item:4: release year 20000 is after 9999"),
    ("item", ITEM + "3000000000\tBig\t1995\tDrama\tx\n", "ml.item:4: item id 3000000000 is above"),
    ("user", USER + "4\t24\tX\tartist\t1\n", "ml.user:5: gender must be F, M or empty, not 'X'"),
    ("user", USER + "4\t24\tF\t25\t1\n", "ml.user:5: occupation 25 is not an ML-1M code (0-20): name it"),
    ("user", USER + "4\t24\tF\t" + "x" * 65 + "\t1\n", "ml.user:5: occupation is longer than 64 characters"),
    ("user", USER + "4\told\tF\tartist\t1\n", "ml.user:5: age is not a whole number: 'old'"),
    ("user", USER + "4\t24\tF\tartist\t12345678901\n", "ml.user:5: zip code '12345678901' is longer than 10"),
]  # fmt: skip


@pytest.mark.parametrize(("suffix", "text", "error"), BAD, ids=[e for _, _, e in BAD])
def test_a_bad_row_is_refused_with_its_file_and_line(
    tmp_path: Path, suffix: str, text: str, error: str
) -> None:
    with pytest.raises(MalformedDataError) as raised:
        load(recbole(tmp_path, {suffix: text}), "recbole")
    assert error in str(raised.value).replace(str(tmp_path) + "/", "")


def test_too_many_occupations_are_refused(tmp_path: Path) -> None:
    rows = "".join(f"{i}\t\t\tjob {i}\t\n" for i in range(1, 1003))
    header = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    with pytest.raises(MalformedDataError, match=r"ml.user:1002: more than 1000 distinct occupations"):
        load(recbole(tmp_path, {"user": header + rows}))


def test_an_item_file_is_needed_and_one_inter_file(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"ml.item not found: the RecBole layout needs ml.inter, ml.item"
    ):
        load(recbole(tmp_path / "a", {"item": None}))
    two = recbole(tmp_path / "b")
    (two / "other.inter").write_text(INTER, encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"exactly one NAME.inter .*, not ml.inter, other.inter"):
        load(two)
