"""The playground through the real app: links keep the user, each movie's year, genres and reasons,
star ratings as text, the title search, and ids that are not ids."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from starlette.testclient import TestClient

from api.movies.titles import display_title
from ml.movielens.format import Movie
from tests.api.conftest import Stack

PAGE = "/admin/playground"


def _items(page: str, list_id: str) -> list[str]:
    """Return the inner HTML of each item of the page's list with that id."""
    match = re.search(rf'<ol id="{list_id}">(.*?)</ol>', page, re.S)
    assert match, f"the page has no list {list_id}"
    return re.findall(r"<li>(.*?)</li>", match.group(1), re.S)


def _links(item: str) -> list[dict[str, str]]:
    """Return the query parameters of each link in a piece of a page, in order."""
    hrefs = [html.unescape(href) for href in re.findall(r'href="([^"]*)"', item)]
    assert all(href.startswith("?") for href in hrefs), hrefs
    return [dict(parse_qsl(href[1:], strict_parsing=True)) for href in hrefs]


def _spoken(item: str) -> str:
    """Return what a screen reader reads of a piece of a page: its text, without aria-hidden parts."""
    item = re.sub(r'<span[^>]*aria-hidden="true"[^>]*>[^<]*</span>', " ", item)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split())


def _title(movie: Movie) -> str:
    """Return the title the page shows: the display title without the year MovieLens appends."""
    return display_title(movie.title).removesuffix(f" ({movie.year})")


def _shows(item: str, movie: Movie) -> bool:
    """Return whether a list item shows the movie's title, year and genres."""
    text = _spoken(item)
    genres = ", ".join(sorted(movie.genres))
    return text.startswith(_title(movie)) and f"{movie.year} · {genres}" in text


def _ratings_of(stack: Stack, user: int) -> dict[int, tuple[int, int]]:
    """Return the user's stars and time (seconds since the epoch) of each movie they rated."""
    r = stack.dataset.ratings
    mine = r.user_id == user
    columns = (r.movie_id[mine].tolist(), r.rating[mine].tolist(), r.timestamp[mine].tolist())
    return {m: (s, t) for m, s, t in zip(*columns, strict=True)}


@pytest.fixture
def client(signed_in: tuple[TestClient, str]) -> TestClient:
    return signed_in[0]


def test_shows_ratings_recommendations_and_similar_movies(client: TestClient, admin_stack: Stack) -> None:
    user, movie = admin_stack.dataset.users[0].id, admin_stack.dataset.movies[0].id
    page = client.get(PAGE, params={"user_id": user, "movie_id": movie})
    assert page.status_code == 200
    assert len(_items(page.text, "recent")) >= 10 and len(_items(page.text, "recommended")) == 10
    assert len(_items(page.text, "similar")) == 10
    unknown = client.get(PAGE, params={"user_id": 999999})
    assert unknown.status_code == 200 and "user 999999 does not exist" in unknown.text


def test_following_a_movie_keeps_the_user(client: TestClient, admin_stack: Stack) -> None:
    user, movie = admin_stack.dataset.users[0].id, admin_stack.dataset.movies[0].id
    page = client.get(PAGE, params={"user_id": user, "movie_id": movie}).text
    for list_id in ("recent", "recommended", "similar"):
        links = [link for item in _items(page, list_id) for link in _links(item)]
        assert links and all(link["user_id"] == str(user) and link["movie_id"] for link in links)
    similar = _links(_items(page, "similar")[0])[0]
    followed = client.get(PAGE, params=similar).text
    assert f"User {user}: recent ratings" in followed and _items(followed, "recommended")
    chosen = next(m for m in admin_stack.dataset.movies if m.id == int(similar["movie_id"]))
    assert f"Similar to {html.escape(_title(chosen))}</h2>" in followed and _items(followed, "similar")


def test_movies_show_year_and_genres_and_recommendations_their_reasons(
    client: TestClient, admin_stack: Stack
) -> None:
    dataset = admin_stack.dataset
    movies = {m.id: m for m in dataset.movies}
    user = dataset.users[0].id
    page = client.get(PAGE, params={"user_id": user, "movie_id": dataset.movies[0].id}).text
    for list_id in ("recent", "recommended", "similar"):
        for item in _items(page, list_id):
            assert _shows(item, movies[int(_links(item)[0]["movie_id"])]), item
    liked = {m for m, (stars, _) in _ratings_of(admin_stack, user).items() if stars >= 4}
    explained = 0
    for item in _items(page, "recommended"):
        reasons = [int(link["movie_id"]) for link in _links(item)[1:]]
        assert set(reasons) <= liked  # the user's own well-rated movies
        if reasons:
            explained += 1
            titles = " and ".join(_title(movies[m]) for m in reasons)
            assert f"because they liked {titles}" in _spoken(item)
    assert explained


def test_star_ratings_read_as_text_with_their_dates(client: TestClient, admin_stack: Stack) -> None:
    user = admin_stack.dataset.users[0].id
    mine = _ratings_of(admin_stack, user)
    items = _items(client.get(PAGE, params={"user_id": user}).text, "recent")
    assert items
    for item in items:
        stars, at = mine[int(_links(item)[0]["movie_id"])]
        date = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")
        assert f"{stars:g}/5, rated {date}" in _spoken(item)  # 4 stars read "4/5", 4.5 "4.5/5"
        assert re.search(r'aria-hidden="true">★*½?☆*</span>', item)  # the stars are read as nothing


def test_title_search_lists_movies_that_choose_the_movie_and_keep_the_user(
    client: TestClient, admin_stack: Stack
) -> None:
    movie, user = admin_stack.dataset.movies[7], admin_stack.dataset.users[1].id
    stored = movie.title.removesuffix(f" ({movie.year})")  # the search reads stored titles
    page = client.get(PAGE, params={"user_id": user, "q": stored.lower()}).text
    found = [item for item in _items(page, "found") if _links(item)[0]["movie_id"] == str(movie.id)]
    assert len(found) == 1 and _shows(found[0], movie)
    link = _links(found[0])[0]
    assert link["user_id"] == str(user)
    chosen = client.get(PAGE, params=link).text
    assert f"Similar to {html.escape(_title(movie))}</h2>" in chosen and f"User {user}:" in chosen
    broad = client.get(PAGE, params={"q": "e"}).text
    assert len(_items(broad, "found")) == 20 and "Only the first 20 are shown" in broad
    assert "No title contains “no such title”" in client.get(PAGE, params={"q": "no such title"}).text
    assert client.get(PAGE, params={"q": "x" * 201}).status_code == 400


@pytest.mark.parametrize("name,label", [("user_id", "User id"), ("movie_id", "Movie id")])
@pytest.mark.parametrize("crafted", ["abc", "²", "-1", "1.5", "0x10"])
def test_an_id_that_is_not_one_is_refused_in_words(
    client: TestClient, admin_stack: Stack, name: str, label: str, crafted: str
) -> None:
    response = client.get(PAGE, params={name: crafted})
    assert response.status_code == 400
    assert f'role="alert">{label} “{crafted}” is not an id: enter a whole number' in response.text
    assert f'name="{name}" value="{crafted}" inputmode="numeric" aria-invalid="true">' in response.text


def test_a_bad_id_is_shown_escaped_and_shortened_beside_what_is_valid(
    client: TestClient, admin_stack: Stack
) -> None:
    movie = admin_stack.dataset.movies[0].id
    response = client.get(PAGE, params={"user_id": "<b>" + "9" * 30, "movie_id": movie})
    assert response.status_code == 400
    assert "User id “&lt;b&gt;99999999999999999…” is not an id" in response.text
    assert "<b>9" not in response.text
    assert len(_items(response.text, "similar")) == 10


def test_a_user_without_demographics_reads_as_unknown(client: TestClient, admin_stack: Stack) -> None:
    from sqlalchemy import text

    from api.db import make_engine

    known = client.get("/admin/playground", params={"user_id": admin_stack.dataset.users[0].id}).text
    assert re.search(r'id="demographics">(female|male), age \d+, occupation \d+', known), known
    engine = make_engine(admin_stack.settings.resolved_database_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, ratings_version, created_at) VALUES (777777, 0, CURRENT_TIMESTAMP)")
        )
    try:
        page = client.get("/admin/playground", params={"user_id": 777777}).text
    finally:  # the stack is shared: other tests count its users
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE id = 777777"))
        engine.dispose()
    assert 'id="demographics">Demographics unknown<' in page
