"""Every dataset layout the import reads, from tiny fixtures written here: detected, read with its
conventions (half stars, genre names, ages in years, missing demographics), refused at the bad line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.movielens import layouts
from ml.movielens.format import MalformedDataError
from ml.movielens.layouts import detect, load
from ml.movielens.tables import numeric_csv_ratings

GENRE_FLAGS = (
    "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"  # unknown, Action, Adventure, Animation, Children's, ...
)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="latin-1" if name.startswith("u.") else "utf-8")
    return directory


def ml100k(directory: Path) -> Path:
    return write(directory, {
        "u.user": "1|24|M|technician|85711\n2|53|F|librarian|94043\n3|17|M|student|32067\n",
        "u.item": f"1|Toy Story (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}\n"
                  "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
        "u.data": "1\t1\t5\t874965758\n2\t1\t3\t876893171\n3\t2\t4\t878542960\n1\t2\t2\t874965800\n",
    })  # fmt: skip


def movielens_csv(directory: Path) -> Path:
    return write(directory, {
        "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy\n"
                      '2,"Dark Knight, The (2008)",Action|Crime|Drama|IMAX\n3,Untitled (2001),(no genres listed)\n',
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964981247\n"
                       "5,1,0.5,964982224\n5,3,5.0,964983815\n",
        "tags.csv": "userId,movieId,tag,timestamp\n1,2,dark,1445714994\n5,2,Batman,1445714995\n"
                    "5,2, Dark ,1445714996\n1,1,pixar,1445714997\n",
    })  # fmt: skip


def generic_csv(directory: Path, users: bool = True) -> Path:
    files = {
        "movies.csv": "movie_id,title,year,genres,description,tags\n"
                      '10,Heat,1995,Action|Crime|Thriller,"A thief, a cop, one last job.",heist|Los  Angeles\n'
                      "11,Clueless (1995),,Comedy,,\n",
        "ratings.csv": "user_id,movie_id,rating,timestamp\n7,10,4.5,2000-12-31T22:12:40Z\n"
                       "7,11,3,978300760\n8,10,2,2001-01-01 10:00:00\n",
    }  # fmt: skip
    if users:
        files["users.csv"] = "user_id,gender,age\n7,F,31\n8,,\n"
    return write(directory, files)


def test_ml100k_reads_ages_in_years_and_occupations_by_name(tmp_path: Path) -> None:
    loaded = load(ml100k(tmp_path))
    assert loaded.layout.name == "ml-100k" and detect(tmp_path).name == "ml-100k"
    names = loaded.dataset.occupations
    users = {u.id: (u.gender, u.age, names[u.occupation], u.zip_code) for u in loaded.dataset.users}
    assert users == {  # the dataset's own occupations, not the nearest of ML-1M's
        1: ("M", 18, "technician", "85711"),
        2: ("F", 50, "librarian", "94043"),
        3: ("M", 1, "student", "32067"),
    }
    movies = {m.id: (m.year, m.genres) for m in loaded.dataset.movies}
    assert movies == {
        1: (1995, ("Animation", "Children's", "Comedy")),
        2: (1995, ("Action", "Adventure", "Thriller")),
    }
    assert loaded.dataset.ratings.rating.tolist() == [5.0, 3.0, 4.0, 2.0]


def test_a_movielens_csv_release_reads_half_stars_and_its_genre_names(tmp_path: Path) -> None:
    loaded = load(movielens_csv(tmp_path))
    assert loaded.layout.name == "movielens-csv"
    assert {u.id: (u.gender, u.age, u.occupation, u.zip_code) for u in loaded.dataset.users} == {
        1: (None, None, None, None),
        5: (None, None, None, None),
    }
    movies = {m.id: (m.title, m.year, m.genres) for m in loaded.dataset.movies}
    assert movies[1] == ("Toy Story (1995)", 1995, ("Adventure", "Animation", "Children's", "Comedy"))
    assert movies[2] == ("Dark Knight, The (2008)", 2008, ("Action", "Crime", "Drama"))
    assert movies[3] == ("Untitled (2001)", 2001, ())
    assert loaded.dataset.ratings.rating.tolist() == [4.0, 3.5, 0.5, 5.0]
    assert loaded.notes == ["IMAX is a screen format, not one of the 18 genres: left out of 1 movies"]
    # tags.csv: each movie's tags, normalised, most applied first
    assert {m.id: m.tags for m in loaded.dataset.movies} == {1: ("pixar",), 2: ("dark", "batman"), 3: ()}
    assert all(m.description is None for m in loaded.dataset.movies)


def test_a_release_keeps_each_movies_most_applied_tags_and_says_what_it_left_out(tmp_path: Path) -> None:
    directory = movielens_csv(tmp_path)
    rows = [f"{u},1,tag {t:02d},1445714994" for t in range(40) for u in range(1, 2 + (t < 3))]
    rows.append(f"1,2,{'x' * 65},1445714994")
    (directory / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + "\n".join(rows) + "\n")
    loaded = load(directory)
    tags = {m.id: m.tags for m in loaded.dataset.movies}
    assert len(tags[1]) == 32 and tags[1][:4] == ("tag 00", "tag 01", "tag 02", "tag 03") and tags[2] == ()
    assert loaded.notes[1:] == [
        "tags.csv: 1 tags longer than 64 characters left out",
        "tags.csv: 1 movies have more than 32 tags: their most applied kept",
    ]


def test_the_generic_layout_takes_optional_users_years_and_iso_times(tmp_path: Path) -> None:
    loaded = load(generic_csv(tmp_path / "with"))
    assert loaded.layout.name == "csv"
    assert {u.id: (u.gender, u.age) for u in loaded.dataset.users} == {7: ("F", 25), 8: (None, None)}
    assert {m.id: m.year for m in loaded.dataset.movies} == {10: 1995, 11: 1995}
    assert loaded.dataset.ratings.timestamp.tolist() == [978300760, 978300760, 978343200]
    text = {m.id: (m.description, m.tags) for m in loaded.dataset.movies}
    assert text == {10: ("A thief, a cop, one last job.", ("heist", "los angeles")), 11: (None, ())}
    bare = load(generic_csv(tmp_path / "without", users=False))
    assert [u.id for u in bare.dataset.users] == [7, 8] and bare.notes


def test_the_generic_layout_takes_an_occupation_by_ml1m_code_or_by_name(tmp_path: Path) -> None:
    directory = generic_csv(tmp_path)
    (directory / "users.csv").write_text(
        "user_id,occupation\n7,12\n8,lighthouse keeper\n9,farmer\n", encoding="utf-8"
    )
    (directory / "ratings.csv").write_text("user_id,movie_id,rating,timestamp\n9,10,4,0\n", encoding="utf-8")
    data = load(directory).dataset
    assert {u.id: u.occupation for u in data.users} == {7: 12, 8: 21, 9: 8}  # ML-1M's codes kept
    assert (data.occupations[12], data.occupations[21], data.occupations[8]) == (
        "programmer",
        "lighthouse keeper",
        "farmer",
    )


@pytest.mark.parametrize(
    ("make", "name", "line", "bad", "reason"),
    [
        (ml100k, "u.data", 2, "2\t1\t6\t876893171", "rating 6 is outside 1-5"),
        (movielens_csv, "ratings.csv", 3, "1,2,3.7,964981247", "not 0.5 to 5 stars in half steps"),
        (movielens_csv, "ratings.csv", 3, "4294967297,2,3.5,964981247", "user id 4294967297 is above"),
        (movielens_csv, "movies.csv", 2, "1,Toy Story (1995),Adventure|Cartoon", "unknown genre 'Cartoon'"),
        (generic_csv, "ratings.csv", 4, "8,99,2,978300760", "movie id 99 is not defined"),
        (movielens_csv, "ratings.csv", 4, "5,99,0.5,964982224", "movie id 99 is not defined"),
        (movielens_csv, "ratings.csv", 5, "1,1,3.0,964983815", "rates the same movie twice"),
        (movielens_csv, "ratings.csv", 2, "0,1,4.0,964982703", "userId 0 is below 1"),
        (generic_csv, "users.csv", 2, "7,X,31", "gender must be F, M or empty"),
        (generic_csv, "ratings.csv", 2, "7,10,4,yesterday", "neither seconds nor ISO 8601"),
        (movielens_csv, "tags.csv", 3, "5,99,dark,1445714995", "movie id 99 is not defined"),
        (generic_csv, "movies.csv", 2, f"10,Heat,1995,,{'x' * 4001},", "description has 4001 characters"),
        (generic_csv, "movies.csv", 3, "11,Clueless,,,," + "|".join(f"t{i}" for i in range(33)), "33 tags"),
        (generic_csv, "movies.csv", 3, f"11,Clueless,,,,{'x' * 65}", "longer than 64 characters"),
    ],
)
def test_a_bad_line_is_named_with_its_file_and_number(
    tmp_path: Path, make: object, name: str, line: int, bad: str, reason: str
) -> None:
    directory = make(tmp_path)  # type: ignore[operator]
    lines = (directory / name).read_text(encoding="latin-1").splitlines()
    lines[line - 1] = bad
    (directory / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(MalformedDataError) as error:
        load(directory)
    assert str(error.value).startswith(f"{directory / name}:{line}: ") and reason in str(error.value)


def test_a_forced_layout_that_does_not_fit_says_what_the_header_lacks(tmp_path: Path) -> None:
    with pytest.raises(MalformedDataError, match=r"movies.csv:1: the header lacks movie_id"):
        load(movielens_csv(tmp_path), "csv")
    with pytest.raises(FileNotFoundError, match="holds no dataset"):
        load(write(tmp_path / "empty", {"notes.txt": "x"}))


NAMES = ("userId", "movieId", "rating", "timestamp")


def test_a_ratings_file_of_numbers_is_parsed_whole_to_what_the_line_reader_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = movielens_csv(tmp_path)
    path = directory / "ratings.csv"
    path.write_text(path.read_text().replace("1,2,3.5,964981247\n", "1,2,3.5,964981247\n\n"))  # blank line
    parsed = numeric_csv_ratings(path, NAMES)
    assert parsed is not None and parsed.line(2) == 5  # the third rating, after the blank line
    whole = load(directory).dataset.ratings
    monkeypatch.setattr(layouts, "numeric_csv_ratings", lambda *_: None)
    by_line = load(directory).dataset.ratings
    for name in ("user_id", "movie_id", "rating", "timestamp"):
        assert getattr(whole, name).dtype == getattr(by_line, name).dtype
        assert getattr(whole, name).tolist() == getattr(by_line, name).tolist()


@pytest.mark.parametrize(
    "text",
    [
        "userId,movieId,rating,timestamp,extra\n1,1,4.0,964982703,1\n",  # another column
        'userId,movieId,rating,timestamp\n1,1,"4.0",964982703\n',  # quoted
        "userId,movieId,rating,timestamp\n1,1,4.0,2000-12-31T22:12:40Z\n",  # an ISO moment
        "userId,movieId,rating,timestamp\n1, 1,4.0,964982703\n",  # a space
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703,\n",  # a line of five fields
        "userId,movieId,rating,timestamp\n1,1.0,4.0,964982703\n",  # an id with a point
        "userId,movieId,rating,timestamp\n1,1,3.7,964982703\n",  # not a half star
    ],
)
def test_any_other_ratings_file_is_left_to_the_line_reader(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    assert numeric_csv_ratings(path, NAMES) is None
