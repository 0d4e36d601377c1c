"""Import: counts, idempotence, all-or-nothing on bad files and interruptions."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.cli import main
from api.cli.commands import data_dir_note
from api.dataimport.service import MovieTextError, count_rows, import_dataset
from api.datasets.service import current_dataset
from api.db import make_batch_engine, make_engine, make_session_factory
from api.ratings import writes
from api.ratings.writes import BulkLoadError
from api.settings import Settings
from api.versions import training_data
from api.versions.training_data import load_training_data, read_ratings
from ml.movielens.layouts import load, load_ml1m
from tests.conftest import DatabaseFactory, upgrade


def _fingerprint(session: Session) -> str:
    """Return a digest of every imported row, to compare whole database states."""
    digest = hashlib.sha256()
    for query in (
        "SELECT id, gender, age, occupation_id, zip_code FROM users ORDER BY id",
        "SELECT id, title, year, description FROM movies ORDER BY id",
        "SELECT movie_id, genre_id FROM movie_genres ORDER BY movie_id, genre_id",
        "SELECT movie_id, position, tag FROM movie_tags ORDER BY movie_id, position",
        "SELECT user_id, movie_id, rating, rated_at FROM ratings ORDER BY user_id, movie_id",
    ):
        for row in session.execute(text(query)):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_import_counts_match_the_files(session: Session, sample_dir: Path) -> None:
    dataset = load_ml1m(sample_dir)
    counts = import_dataset(session=session, dataset=dataset, batch_size=500)
    assert (counts.users, counts.movies, counts.ratings) == (
        len(dataset.users),
        len(dataset.movies),
        len(dataset.ratings),
    )
    links = session.execute(text("SELECT COUNT(*) FROM movie_genres")).scalar_one()
    assert links == sum(len(m.genres) for m in dataset.movies)


def test_training_reads_every_rating_back_streamed_in_chunks(
    session: Session, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(read_ratings(session=session)) == 0  # an empty table reads as empty arrays
    dataset = load_ml1m(sample_dir)
    import_dataset(session=session, dataset=dataset)
    monkeypatch.setattr(training_data, "RATINGS_CHUNK", 7)  # many chunks, the last one short
    read = load_training_data(session=session).ratings
    assert len(dataset.ratings) % 7 != 0

    def rows(r: object) -> list[tuple[int, int, float, int]]:
        columns = (r.user_id, r.movie_id, r.rating, r.timestamp)  # type: ignore[attr-defined]
        return sorted(zip(*(c.tolist() for c in columns), strict=True))

    assert rows(read) == rows(dataset.ratings)
    assert [a.dtype for a in (read.user_id, read.movie_id, read.rating, read.timestamp)] == [
        np.int32,
        np.int32,
        np.float32,
        np.int64,
    ]


def test_import_values_round_trip(session: Session, sample_dir: Path) -> None:
    dataset = load_ml1m(sample_dir)
    import_dataset(session=session, dataset=dataset)
    movie = dataset.movies[0]
    row = session.execute(text("SELECT title, year FROM movies WHERE id = :id"), {"id": movie.id}).one()
    assert tuple(row) == (movie.title, movie.year)
    genres = session.execute(
        text(
            "SELECT g.name FROM genres g JOIN movie_genres mg ON mg.genre_id = g.id WHERE mg.movie_id = :id"
        ),
        {"id": movie.id},
    ).scalars()
    assert sorted(genres) == sorted(movie.genres)
    first = session.execute(
        text("SELECT rating FROM ratings WHERE user_id = :u AND movie_id = :m"),
        {"u": int(dataset.ratings.user_id[0]), "m": int(dataset.ratings.movie_id[0])},
    ).scalar_one()
    assert first == int(dataset.ratings.rating[0])


def test_second_import_changes_nothing(session: Session, sample_dir: Path) -> None:
    dataset = load_ml1m(sample_dir)
    first_counts = import_dataset(session=session, dataset=dataset, batch_size=700)
    first = _fingerprint(session)
    second_counts = import_dataset(session=session, dataset=dataset, batch_size=300)
    assert second_counts == first_counts
    assert _fingerprint(session) == first


def _fresh(database_factory: DatabaseFactory) -> str:
    url = database_factory.new_url()
    upgrade(url)
    return url


def test_interrupted_import_leaves_nothing_and_a_rerun_completes(
    database_factory: DatabaseFactory, sample_dir: Path
) -> None:
    url = _fresh(database_factory)
    dataset = load_ml1m(sample_dir)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    written = 0

    def interrupt_midway(rows: int) -> None:
        nonlocal written
        written += rows
        if written > len(dataset.ratings) // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), sessions.begin() as session:
        import_dataset(session=session, dataset=dataset, batch_size=200, progress=interrupt_midway)
    with sessions() as session:
        assert count_rows(session=session).ratings == 0
        assert count_rows(session=session).users == 0
    with sessions.begin() as session:
        counts = import_dataset(session=session, dataset=dataset, batch_size=200)
    assert counts.ratings == len(dataset.ratings)
    engine.dispose()


def test_a_first_import_into_mysql_loads_in_bulk_the_same_rows_all_or_nothing(
    database_factory: DatabaseFactory, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line's engine loads an empty MySQL ratings table with one LOAD DATA, checks off;
    it holds what row upserts write, and a rating of a user that does not exist rolls it all back."""
    if database_factory.backend != "mysql":
        pytest.skip("LOAD DATA is MySQL's")
    dataset = load_ml1m(sample_dir)
    bulk_loads: list[int] = []
    load_in_bulk = writes._load_in_bulk
    monkeypatch.setattr(
        writes,
        "_load_in_bulk",
        lambda connection, ratings: (bulk_loads.append(len(ratings)), load_in_bulk(connection, ratings)),
    )
    fingerprints = []
    for make in (make_engine, make_batch_engine):  # rows (no LOCAL INFILE), then in bulk
        engine = make(_fresh(database_factory))
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            import_dataset(session=session, dataset=dataset)
        with sessions() as session:
            fingerprints.append(_fingerprint(session))
            assert session.execute(text("SELECT @@unique_checks, @@foreign_key_checks")).one() == (1, 1)
        engine.dispose()
    assert bulk_loads == [len(dataset.ratings)]
    assert fingerprints[0] == fingerprints[1]

    engine = make_batch_engine(_fresh(database_factory))
    sessions = make_session_factory(engine)
    user_id = dataset.ratings.user_id.copy()
    user_id[-1] = 10**6  # not among the dataset's users
    stray = dataclasses.replace(dataset, ratings=dataclasses.replace(dataset.ratings, user_id=user_id))
    with (
        pytest.raises(BulkLoadError, match=r"1 users that do not exist, e\.g\. 1000000"),
        sessions.begin() as session,
    ):
        import_dataset(session=session, dataset=stray)
    with sessions() as session:
        counts = count_rows(session=session)
    assert (counts.users, counts.movies, counts.ratings) == (0, 0, 0)

    # A row the server refuses (a rating that was there before the load) is a warning under LOCAL:
    # the load counts them and rolls the import back.
    with sessions.begin() as session:
        import_dataset(session=session, dataset=dataset)  # in bulk: the table was empty
    with sessions() as session:
        before = _fingerprint(session)
    monkeypatch.setattr(writes, "_can_load_in_bulk", lambda *_: True)
    refused = rf"loaded 0 of {len(dataset.ratings)} ratings with {len(dataset.ratings)} warnings"
    with pytest.raises(BulkLoadError, match=refused), sessions.begin() as session:
        import_dataset(session=session, dataset=dataset)
    with sessions() as session:
        assert _fingerprint(session) == before
    engine.dispose()


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str, var_dir: Path) -> None:
    monkeypatch.setenv("MOVIEREC_DATABASE_URL", url)
    monkeypatch.setenv("MOVIEREC_VAR_DIR", str(var_dir))
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)


def test_command_imports_a_directory_twice_with_identical_counts(
    database_factory: DatabaseFactory,
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    dataset = load_ml1m(sample_dir)
    expected = (
        f"imported: {len(dataset.users)} users, {len(dataset.movies)} movies, {len(dataset.ratings)} ratings"
    )
    for _ in range(2):
        assert main(["data", "import", "--source", str(sample_dir), "--quiet"]) == 0
        assert expected in capsys.readouterr().out


def test_up_says_when_the_data_dir_is_not_what_the_database_was_imported_from(
    database_factory: DatabaseFactory,
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    settings = Settings(database_url=url, var_dir=tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    unrecorded = data_dir_note(settings.model_copy(update={"data_dir": other}))
    assert unrecorded is not None and "from a source not recorded here" in unrecorded

    assert main(["data", "import", "--source", str(sample_dir), "--quiet"]) == 0
    assert data_dir_note(settings) is None  # no MOVIEREC_DATA_DIR: nothing to compare
    assert data_dir_note(settings.model_copy(update={"data_dir": sample_dir})) is None
    note = data_dir_note(settings.model_copy(update={"data_dir": other}))
    assert note == (
        f"data: MOVIEREC_DATA_DIR is {other}, but the database was imported from {sample_dir.resolve()}; "
        "serving what it holds (--reimport to import the new directory)"
    )


def test_malformed_file_is_one_error_line_and_imports_nothing(
    database_factory: DatabaseFactory,
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("users.dat", "movies.dat", "ratings.dat"):
        (broken / name).write_bytes((sample_dir / name).read_bytes())
    lines = (broken / "ratings.dat").read_text(encoding="latin-1").splitlines()
    user, movie, _rating, stamp = lines[41].split("::")
    lines[41] = f"{user}::{movie}::6::{stamp}"
    (broken / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")

    assert main(["data", "import", "--source", str(broken), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{broken / 'ratings.dat'}:42:" in err[0] and "rating 6" in err[0]
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        counts = count_rows(session=session)
    engine.dispose()
    assert (counts.users, counts.movies, counts.ratings) == (0, 0, 0)


def test_sample_source_needs_no_network(
    database_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    assert main(["data", "import", "--source", "sample", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "synthetic sample" in out and "imported: 1000 users, 600 movies" in out
    engine = make_engine(url)
    with make_session_factory(engine)() as session:  # recorded with the import, as synthetic
        recorded = current_dataset(session=session)
    engine.dispose()
    assert recorded is not None and recorded.synthetic and recorded.layout == "ml-1m"
    assert (recorded.users, recorded.movies, recorded.description) == (
        1000,
        600,
        "synthetic sample (1000 users, 600 movies)",
    )


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("movierec: error: "), err
    return err[0]


def test_a_missing_data_dir_is_one_line_naming_the_setting(
    database_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_database(monkeypatch, _fresh(database_factory), tmp_path)
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["data", "import", "--quiet"]) == 1
    assert "MOVIEREC_DATA_DIR" in _one_error_line(capsys)


def test_a_database_not_migrated_says_which_command_to_run(
    database_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_database(monkeypatch, database_factory.new_url(), tmp_path)
    for command in (["summary"], ["versions", "list"], ["keys", "list"]):
        assert main(command) == 1
        assert "run `movierec db upgrade`" in _one_error_line(capsys)


def test_an_unreachable_database_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _use_database(monkeypatch, f"mysql+pymysql://root@127.0.0.1:{port}/test", tmp_path)
    assert main(["summary"]) == 1
    assert "cannot use the database at" in _one_error_line(capsys)


def test_commands_write_plain_progress_lines_into_a_log(
    database_factory: DatabaseFactory,
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Output that is not a terminal gets a line per tenth of the work, not a bar redrawn 10×/s."""
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    monkeypatch.setenv("MOVIEREC_MILVUS_URI", str(tmp_path / "milvus.db"))
    assert main(["data", "import", "--source", str(sample_dir)]) == 0
    engine = make_engine(url)
    with engine.begin() as connection:  # a user who has rated nothing yet
        connection.execute(
            text("INSERT INTO users (id, gender, age, occupation_id, zip_code, ratings_version, created_at)"
                 " VALUES (999999, 'F', 25, 1, '12345', 0, CURRENT_TIMESTAMP)")
        )  # fmt: skip
    engine.dispose()
    assert main(["train", "--epochs", "1"]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    for task in ("importing", "train", "keeping recommendations"):
        lines = [line for line in err.splitlines() if line.startswith(f"{task}: ")]
        assert 1 <= len(lines) <= 10 and lines[-1].startswith(f"{task}: 100%"), (task, err)
    users = len(load_ml1m(sample_dir).users)
    assert f"kept the recommendations of {users} users in " in out
    assert "; 1 without ratings get the popular movies" in out


@pytest.mark.parametrize(
    ("layout", "counts"),
    [("ml-100k", (3, 2, 4)), ("movielens-csv", (2, 3, 4)), ("csv", (2, 2, 3))],
)
def test_every_layout_imports_and_says_which_it_found(
    database_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    layout: str,
    counts: tuple[int, int, int],
) -> None:
    from tests.ml.test_layouts import generic_csv, ml100k, movielens_csv

    directory = {"ml-100k": ml100k, "movielens-csv": movielens_csv, "csv": generic_csv}[layout](
        tmp_path / "data"
    )
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    assert main(["data", "import", "--source", str(directory), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"layout: {layout}, " in out
    assert f"imported: {counts[0]} users, {counts[1]} movies, {counts[2]} ratings" in out
    # forcing another layout is refused at the first line that does not fit, and imports nothing more
    other = "csv" if layout != "csv" else "movielens-csv"
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        before = _fingerprint(session)
    assert main(["data", "import", "--source", str(directory), "--format", other, "--quiet"]) == 1
    refusal = "movies.csv not found" if layout == "ml-100k" else "movies.csv:1: the header lacks"
    assert refusal in capsys.readouterr().err
    with make_session_factory(engine)() as session:
        assert _fingerprint(session) == before
    engine.dispose()


def test_descriptions_and_tags_round_trip_into_training_and_are_replaced_by_a_reimport(
    session: Session, tmp_path: Path
) -> None:
    from tests.ml.test_layouts import generic_csv, movielens_csv

    dataset = load(generic_csv(tmp_path / "csv")).dataset
    import_dataset(session=session, dataset=dataset)
    assert load_training_data(session=session).movies == dataset.movies
    first = _fingerprint(session)
    import_dataset(session=session, dataset=dataset)
    assert _fingerprint(session) == first
    # the file is the truth: a movie's description and tags are the latest import's
    changed = [
        dataclasses.replace(m, description=None, tags=("fewer",)) if m.id == 10 else m for m in dataset.movies
    ]
    import_dataset(session=session, dataset=dataclasses.replace(dataset, movies=changed))
    assert {m.id: (m.description, m.tags) for m in load_training_data(session=session).movies} == {
        10: (None, ("fewer",)),
        11: (None, ()),
    }
    release = load(movielens_csv(tmp_path / "release")).dataset  # tags.csv, most applied first
    import_dataset(session=session, dataset=release)
    trained_on = {m.id: m.tags for m in load_training_data(session=session).movies}
    assert trained_on[2] == ("dark", "batman") and trained_on[1] == ("pixar",)


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ({"description": "x" * 4001}, "movie 10 has a description of 4001 characters, at most 4000"),
        ({"tags": tuple(f"t{i}" for i in range(33))}, "movie 10 has 33 tags or repeats one: at most 32"),
        ({"tags": ("a", "a")}, "repeats one"),
        ({"tags": ("x" * 65,)}, "longer than 64 characters"),
    ],
)
def test_text_past_the_bounds_is_refused_before_anything_is_written(
    session: Session, tmp_path: Path, text: dict[str, object], refusal: str
) -> None:
    """A dataset built without the readers (which keep the bounds) meets them at the import."""
    from tests.ml.test_layouts import generic_csv

    dataset = load(generic_csv(tmp_path)).dataset
    movies = [dataclasses.replace(m, **text) if m.id == 10 else m for m in dataset.movies]  # type: ignore[arg-type]
    with pytest.raises(MovieTextError, match=refusal):
        import_dataset(session=session, dataset=dataclasses.replace(dataset, movies=movies))
    assert count_rows(session=session).movies == 0


def test_the_sample_command_writes_text_in_the_csv_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "text"
    assert main(["data", "sample", "--out", str(out), "--users", "40", "--movies", "30", "--text"]) == 0
    assert f"wrote a synthetic sample to {out}" in capsys.readouterr().out
    loaded = load(out)
    assert loaded.layout.name == "csv" and any(m.description and m.tags for m in loaded.dataset.movies)


def test_the_sample_command_writes_an_ml25m_shaped_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ml25m"
    assert main(["data", "sample", "--out", str(out), "--ml25m", "0.01"]) == 0
    assert "1625 users, 624 movies, 250001 ratings" in capsys.readouterr().out
    loaded = load(out)
    assert loaded.layout.name == "movielens-csv" and len(loaded.dataset.ratings) == 250_001
    assert main(["data", "sample", "--out", str(out), "--ml25m", "2"]) == 1
    assert "--ml25m is a share" in _one_error_line(capsys)


def _users_by_occupation(session: Session) -> dict[int, str | None]:
    query = "SELECT u.id, o.name FROM users u LEFT JOIN occupations o ON o.id = u.occupation_id ORDER BY u.id"
    return {int(i): name for i, name in session.execute(text(query))}


def test_recbole_files_import_end_to_end_with_their_occupations_and_a_record(
    database_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.ml.test_recbole import recbole

    directory = recbole(tmp_path / "data")
    url = _fresh(database_factory)
    _use_database(monkeypatch, url, tmp_path)
    assert main(["data", "import", "--source", str(directory), "--format", "recbole", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "layout: recbole, RecBole atomic files" in out
    assert "note: ml.item: field director:token is not read" in out
    assert "imported: 3 users, 2 movies, 4 ratings" in out
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        assert _users_by_occupation(session) == {1: "librarian", 2: "K-12 student", 3: "artist"}
        occupations = dict(session.execute(text("SELECT id, name FROM occupations")).all())
        assert len(occupations) == 22 and occupations[21] == "librarian"  # ML-1M's keep their ids
        assert (occupations[10], occupations[2], occupations[12]) == ("K-12 student", "artist", "programmer")
        ratings = session.execute(
            text("SELECT user_id, movie_id, rating FROM ratings ORDER BY user_id, movie_id")
        )
        assert [tuple(r) for r in ratings] == [(1, 10, 5.0), (1, 11, 3.5), (2, 10, 1.0), (3, 11, 4.0)]
        movie = session.execute(text("SELECT title, year FROM movies WHERE id = 10")).one()
        assert tuple(movie) == ("Toy Story", 1995)
        recorded = current_dataset(session=session)
        assert recorded is not None and not recorded.synthetic
        assert (recorded.layout, recorded.users, recorded.movies, recorded.ratings) == ("recbole", 3, 2, 4)
        assert recorded.description == f"the dataset in {directory}"
        before = _fingerprint(session)
    # detected again, imported again: no occupation is added twice, nothing changes but the record
    assert main(["data", "import", "--source", str(directory), "--quiet"]) == 0
    assert "layout: recbole" in capsys.readouterr().out
    with sessions() as session:
        assert _fingerprint(session) == before
        assert session.execute(text("SELECT COUNT(*) FROM occupations")).scalar_one() == 22
        assert session.execute(text("SELECT COUNT(*) FROM datasets")).scalar_one() == 2
    engine.dispose()


def test_ml100k_occupations_are_kept_as_the_data_names_them(session: Session, tmp_path: Path) -> None:
    from tests.ml.test_layouts import ml100k

    import_dataset(session=session, dataset=load(ml100k(tmp_path)).dataset)
    assert _users_by_occupation(session) == {1: "technician", 2: "librarian", 3: "student"}
    assert load_training_data(session=session).occupations[21] == "technician"
