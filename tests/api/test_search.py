"""Title search on both backends: the order a user expects, words any length, hostile input, pages
without gaps or repeats, and an index and rating counts that follow imports and writes.

The catalogue is committed in a database of its own: InnoDB's full-text index sees no row before its
transaction commits, so the rolled-back sessions of the other tests would find nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from api.dataimport.service import import_dataset
from api.db import make_engine, make_session_factory
from api.errors import BadUserInput, NotFound
from api.movies import search as title_search
from api.movies.models import Movie as MovieRow
from api.movies.service import create_movie, search_movies
from api.ratings.models import Rating
from api.ratings.writes import delete_rating, rate_movie
from ml.movielens.format import Dataset, Movie, Ratings, User
from tests.api.conftest import GraphQL
from tests.conftest import DatabaseFactory, upgrade

# id, title, genres, how many users rate it
CATALOGUE = [
    (1, "Star Maker, The (Uomo delle stelle, L') (1995)", ("Drama",), 1),
    (2, "Stargate (1994)", ("Sci-Fi",), 9),  # the most rated "star", but no whole word "star"
    (3, "Lone Star (1996)", ("Drama",), 2),
    (4, "Up (2009)", ("Animation",), 3),
    (5, "It (2017)", ("Horror",), 2),
    (6, "Fired Up! (2009)", ("Comedy",), 1),
    (7, "Matrix, The (1999)", ("Sci-Fi",), 5),
    (8, "Café au lait (1993)", ("Comedy",), 1),
    (9, "Superstar (1999)", ("Comedy",), 4),  # "star" inside a word: no match
    (10, "Star Wars: Episode IV - A New Hope (1977)", ("Sci-Fi",), 6),
    (11, "It's a Wonderful Life (1946)", ("Drama",), 4),
    (12, "M*A*S*H (1970)", ("Comedy",), 0),
    (13, "Star Trek: Generations (1994)", ("Sci-Fi",), 6),  # ties with Star Wars, whose id is lower
]
USERS = 9


def dataset(catalogue: list[tuple[int, str, tuple[str, ...], int]]) -> Dataset:
    pairs = [(user, movie) for movie, _title, _genres, raters in catalogue for user in range(1, raters + 1)]
    users, movies = np.array(pairs, dtype=np.int32).reshape(-1, 2).T
    ratings = Ratings(
        user_id=users,
        movie_id=movies,
        rating=np.full(len(pairs), 4.0, dtype=np.float32),
        timestamp=np.full(len(pairs), 1_000_000_000, dtype=np.int64),
    )
    return Dataset(
        users=[User(i, "F", 25, 1, "12345") for i in range(1, USERS + 1)],
        movies=[Movie(i, t, int(t[-5:-1]), g) for i, t, g, _ in catalogue],
        ratings=ratings,
    )


@dataclass
class Catalogue:
    engine: Engine
    sessions: sessionmaker[Session]

    def titles(self, search: str, first: int = 100, **filters: object) -> list[str]:
        with self.sessions() as session:
            found = search_movies(session=session, search=search, first=first, **filters)  # type: ignore[arg-type]
            return [movie.title for movie, _position in found]


@pytest.fixture(scope="module")
def catalogue(database_factory: DatabaseFactory) -> Iterator[Catalogue]:
    url = database_factory.new_url()
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        import_dataset(session=session, dataset=dataset(CATALOGUE))
    yield Catalogue(engine, sessions)
    engine.dispose()


def test_whole_words_first_then_the_most_rated(catalogue: Catalogue) -> None:
    assert catalogue.titles("star") == [
        "Star Wars: Episode IV - A New Hope (1977)",
        "Star Trek: Generations (1994)",
        "Lone Star (1996)",
        "Star Maker, The (Uomo delle stelle, L') (1995)",
        "Stargate (1994)",
    ]
    assert catalogue.titles("STAR wars") == ["Star Wars: Episode IV - A New Hope (1977)"]
    assert catalogue.titles("wars star") == ["Star Wars: Episode IV - A New Hope (1977)"]
    assert catalogue.titles("star wa") == ["Star Wars: Episode IV - A New Hope (1977)"]  # still typing
    assert catalogue.titles("sta") == [  # no whole word: by ratings alone
        "Stargate (1994)",
        "Star Wars: Episode IV - A New Hope (1977)",
        "Star Trek: Generations (1994)",
        "Lone Star (1996)",
        "Star Maker, The (Uomo delle stelle, L') (1995)",
    ]
    assert catalogue.titles("1977") == ["Star Wars: Episode IV - A New Hope (1977)"]


def test_short_words_and_stopwords_are_found(catalogue: Catalogue) -> None:
    """MariaDB indexes no word under three letters nor its stopwords ("it", "the", "a")."""
    assert catalogue.titles("Up") == ["Up (2009)", "Fired Up! (2009)"]
    assert catalogue.titles("it") == ["It's a Wonderful Life (1946)", "It (2017)"]
    assert catalogue.titles("the matrix") == ["Matrix, The (1999)"]
    assert catalogue.titles("matrix the") == ["Matrix, The (1999)"]
    assert catalogue.titles("fired up") == ["Fired Up! (2009)"]
    assert catalogue.titles("a new hope") == ["Star Wars: Episode IV - A New Hope (1977)"]
    assert catalogue.titles("M*A*S*H") == ["M*A*S*H (1970)"]
    assert catalogue.titles("cafe") == catalogue.titles("CAFÉ") == ["Café au lait (1993)"]


@pytest.mark.parametrize(
    "hostile",
    [
        '"', '"star', "star*", "*", "-star", "+star -wars", "(star", "star)", "star OR wars", "star AND",
        "NEAR(star wars)", "NOT star", "star:", "title:star", "^star", "'", "\\", "%", "_", "%_%", "@@",
        "~star", "<star >wars", "star\x00", "\u202estar", "🙂", " ", "a" * 200, "a " * 100, "ab" * 100,
    ],
)  # fmt: skip
def test_search_syntax_in_the_text_is_only_text(catalogue: Catalogue, hostile: str) -> None:
    found = catalogue.titles(hostile)
    words = ["".join(c for c in w if c.isalnum()) for w in hostile.replace("*", " ").split()]
    assert all(any(w.lower() in t.lower() for t in found) for w in words if w) or not found


def test_operators_are_words(catalogue: Catalogue) -> None:
    assert catalogue.titles("star -wars") == catalogue.titles("star wars")
    assert catalogue.titles('"star" OR "up"') == []  # "or" is a word no title has
    assert catalogue.titles("star*") == catalogue.titles("star")
    assert catalogue.titles("%") == catalogue.titles("_") == []


def test_pages_follow_the_order_without_gaps_or_repeats(catalogue: Catalogue) -> None:
    with catalogue.sessions() as session:
        whole = [m.id for m, _ in search_movies(session=session, search="s", first=100)]
        assert len(whole) >= 8
        for size in (1, 2, 3):
            seen: list[int] = []
            after = None
            while True:
                page = search_movies(session=session, search="s", first=size, after=after)
                seen += [m.id for m, _ in page[:size]]
                if len(page) <= size:
                    break
                after = page[size - 1][1]
            assert seen == whole


def test_broad_searches_answered_from_the_most_rated_movies_page_as_the_others(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search of only common words first looks for each tier's page among the most rated movies; its
    pages are the ones of the full search, and some of them it answers alone."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(catalogue.engine, "before_cursor_execute", record)

    def pages(search: str, size: int) -> tuple[list[int], bool]:
        """Return the ids of every page of a search and whether a page was answered by the most rated
        movies alone (every statement that searches kept to them)."""
        seen: list[int] = []
        alone = False
        after = None
        with catalogue.sessions() as session:
            while True:
                statements.clear()
                page = search_movies(session=session, search=search, first=size, after=after)
                searched = [s for s in statements if "WHERE" in s]  # not the floor's statement
                alone |= all("movies.rating_count >=" in s for s in searched)
                seen += [m.id for m, _ in page[:size]]
                if len(page) <= size:
                    return seen, alone
                after = page[size - 1][1]

    try:
        answered_alone = False
        for search in ("it", "a", "the", "up", "s", "of the", "st", "i"):
            for size in (1, 2, 3):
                monkeypatch.setattr(title_search, "MOST_RATED", 10**6)  # no such movie: the full search
                whole, _ = pages(search, size)
                monkeypatch.setattr(title_search, "MOST_RATED", 8)
                among_most_rated, alone = pages(search, size)
                assert among_most_rated == whole, (search, size)
                answered_alone |= alone
        assert answered_alone
    finally:
        event.remove(catalogue.engine, "before_cursor_execute", record)


def test_filters_apply_to_a_search(catalogue: Catalogue) -> None:
    assert catalogue.titles("star", genre="Drama") == [
        "Lone Star (1996)",
        "Star Maker, The (Uomo delle stelle, L') (1995)",
    ]
    assert catalogue.titles("star", year_from=1990, year_to=1995) == [
        "Star Trek: Generations (1994)",
        "Star Maker, The (Uomo delle stelle, L') (1995)",
        "Stargate (1994)",
    ]
    with pytest.raises(
        BadUserInput, match=r"unknown genre 'SciFi' \(did you mean 'Sci-Fi'\?\); known genres: "
    ):
        catalogue.titles("star", genre="SciFi")


def rating_counts(session: Session) -> dict[int, int]:
    stored = dict(session.execute(select(MovieRow.id, MovieRow.rating_count)).all())
    counted = dict(session.execute(select(Rating.movie_id, func.count()).group_by(Rating.movie_id)).all())
    return {movie: n for movie, n in stored.items() if n or counted.get(movie)} | {
        movie: -n for movie, n in counted.items() if stored.get(movie) != n
    }


def test_rating_counts_follow_rates_deletes_and_imports(catalogue: Catalogue) -> None:
    """A new rating counts once, a changed one not again, a deleted one no more; the order follows."""
    with catalogue.sessions.begin() as session:
        movie = create_movie(session=session, title="Star Dust (2007)", year=2007, genres=["Drama"])
    try:
        assert catalogue.titles("star")[-2:] == ["Star Dust (2007)", "Stargate (1994)"], catalogue.titles(
            "star"
        )
        for stars in (4.0, 2.5):  # the same user twice: one rating
            for user in range(1, 8):
                with catalogue.sessions.begin() as session:
                    rate_movie(session=session, user_id=user, movie_id=movie.id, rating=stars)
        assert catalogue.titles("star")[0] == "Star Dust (2007)", catalogue.titles("star")
        with catalogue.sessions.begin() as session:
            for user in range(1, 3):
                delete_rating(session=session, user_id=user, movie_id=movie.id)
            with pytest.raises(NotFound):
                delete_rating(session=session, user_id=1, movie_id=movie.id)
        assert catalogue.titles("star")[2] == "Star Dust (2007)"  # 5 ratings, after the two of 6
        with catalogue.sessions() as session:
            counts = rating_counts(session)
        assert all(n >= 0 for n in counts.values()), counts  # a negative one is a stored count that differs
        assert counts[movie.id] == 5
    finally:
        with catalogue.sessions.begin() as session:
            session.execute(Rating.__table__.delete().where(Rating.movie_id == movie.id))
            session.execute(MovieRow.__table__.delete().where(MovieRow.id == movie.id))


def test_an_import_renames_and_adds_what_search_finds(database_factory: DatabaseFactory) -> None:
    url = database_factory.new_url()
    upgrade(url)
    engine = make_engine(url)
    found = Catalogue(engine, make_session_factory(engine))
    try:
        with found.sessions.begin() as session:
            import_dataset(session=session, dataset=dataset(CATALOGUE))
        again = [(1, "Starman (1984)", ("Sci-Fi",), 8), (20, "Dark Star (1974)", ("Sci-Fi",), 7)]
        with found.sessions.begin() as session:
            import_dataset(session=session, dataset=dataset(again))
        assert found.titles("uomo") == []
        assert found.titles("star") == [
            "Dark Star (1974)",
            "Star Wars: Episode IV - A New Hope (1977)",
            "Star Trek: Generations (1994)",
            "Lone Star (1996)",
            "Stargate (1994)",
            "Starman (1984)",
        ]
        with found.sessions() as session:
            assert all(n >= 0 for n in rating_counts(session).values())
            assert session.get(MovieRow, 1).rating_count == 8  # type: ignore[union-attr]
    finally:
        engine.dispose()


SEARCH = "query($s: String, $after: String) { movies(search: $s, first: 2, after: $after) { nodes { id title } pageInfo { hasNextPage endCursor } } }"


def test_graphql_search_ranks_whole_words_then_the_most_rated(gql: GraphQL) -> None:
    query = '{ movies(search: "the", first: 100) { nodes { id title ratingsCount } } }'
    nodes = gql.data(query)["movies"]["nodes"]
    assert len(nodes) > 20 and all(re.search(r"\bthe", n["title"], re.IGNORECASE) for n in nodes)

    def rank(node: dict[str, Any]) -> tuple[bool, int, int]:
        return (not re.search(r"\bthe\b", node["title"], re.IGNORECASE), -node["ratingsCount"], node["id"])

    assert [n["id"] for n in nodes] == [n["id"] for n in sorted(nodes, key=rank)]


def test_graphql_search_pages_by_opaque_cursors(gql: GraphQL) -> None:
    first = gql.data(SEARCH, s="the")["movies"]
    assert first["pageInfo"]["hasNextPage"]
    second = gql.data(SEARCH, s="the", after=first["pageInfo"]["endCursor"])["movies"]
    assert not {n["id"] for n in first["nodes"]} & {n["id"] for n in second["nodes"]}
    listing = gql.data("{ movies(first: 1) { pageInfo { endCursor } } }")["movies"]["pageInfo"]["endCursor"]
    assert gql.error_code(SEARCH, s="the", after=listing) == "BAD_USER_INPUT"  # a cursor of the listing
    assert gql.error_code(SEARCH, after=first["pageInfo"]["endCursor"]) == "BAD_USER_INPUT"  # and back


@pytest.mark.parametrize("value", ["2.1.5", "0.-1.5", "0.1", "0.1.5.6", "0.99999999999.1", "0.1.²", "x.y.z"])
def test_crafted_search_cursors_are_refused(gql: GraphQL, value: str) -> None:
    from api.graphql.pagination import encode_cursor

    assert gql.error_code(SEARCH, s="the", after=encode_cursor("movie-search", value)) == "BAD_USER_INPUT"


def test_an_unknown_genre_names_the_closest(gql: GraphQL) -> None:
    body = gql('{ movies(genre: "SciFi") { nodes { id } } }')
    assert body["errors"][0]["message"].startswith(
        "unknown genre 'SciFi' (did you mean 'Sci-Fi'?); known genres: Action,"
    )
    body = gql('{ movies(genre: "Xyzzy") { nodes { id } } }')
    assert body["errors"][0]["message"].startswith("unknown genre 'Xyzzy'; known genres: Action,")
