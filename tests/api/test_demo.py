"""The demo front end's back end (api/demo): served in development or when switched on, never else; its
session route refuses bad input with a code, creates users, and mints tokens that act as one user only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from api.access.tokens import DEMO_MINTER, issue_user_token, read_user_token
from api.app import create_app
from api.db import make_engine, make_session_factory
from api.demo import starters
from api.demo.routes import MAX_BODY_BYTES
from api.ratings.models import Rating
from api.settings import Settings
from api.users.models import User
from tests.api.conftest import GraphQL, Stack, StatementCounter, build_stack
from tests.conftest import DatabaseFactory

RECS = "query($u: Int!) { recommendations(userId: $u, limit: 10) { source movie { id } } }"
NEW_USER = {"gender": "F", "age": 25, "occupation": 12, "zipCode": "10001"}


@pytest.fixture(scope="module")
def demo_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: these tests create users and rate."""
    return build_stack(database_factory, tmp_path_factory.mktemp("demo"), train=True)


@pytest.fixture(scope="module")
def dev(demo_stack: Stack) -> Iterator[TestClient]:
    """A client of the app in development, where the demo is on by default."""
    settings = demo_stack.settings.model_copy(update={"environment": "development"})
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def _users(stack: Stack) -> int:
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.execute(select(func.count()).select_from(User)).scalar_one()
    finally:
        engine.dispose()


def test_the_setting_is_on_in_development_only_unless_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MOVIEREC_DEMO", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    secrets = {"admin_password": "k3ep-it-s3cret", "session_secret": "s" * 32, "token_secret": "t" * 32}
    assert Settings(environment="development").demo_enabled
    assert not Settings(environment="development", demo=False).demo_enabled
    assert not Settings(environment="production", **secrets).demo_enabled
    assert not Settings(environment="test", **secrets).demo_enabled
    monkeypatch.setenv("MOVIEREC_DEMO", "true")
    assert Settings(environment="production", **secrets).demo_enabled


def test_off_outside_development_nothing_answers_at_demo(demo_stack: Stack) -> None:
    assert demo_stack.settings.environment == "test" and demo_stack.settings.demo is None
    off_in_development = demo_stack.settings.model_copy(update={"environment": "development", "demo": False})
    for settings in (demo_stack.settings, off_in_development):
        before = _users(demo_stack)
        with TestClient(create_app(settings)) as client:
            assert client.get("/demo/").status_code == 404
            assert client.get("/demo/demo.js").status_code == 404
            assert client.post("/demo/session", json={"newUser": NEW_USER}).status_code == 404
        assert _users(demo_stack) == before


def test_on_when_switched_on_outside_development(demo_stack: Stack) -> None:
    settings = demo_stack.settings.model_copy(update={"demo": True})
    with TestClient(create_app(settings)) as client:
        assert client.get("/demo/").status_code == 200
        user_id = demo_stack.dataset.users[0].id
        assert client.post("/demo/session", json={"userId": user_id}).json()["userId"] == user_id


def test_its_tokens_stop_working_when_the_demo_is_switched_off(dev: TestClient, demo_stack: Stack) -> None:
    user = demo_stack.dataset.users[0].id
    token = dev.post("/demo/session", json={"userId": user}).json()["token"]
    query = {"query": "query($u: Int!) { user(id: $u) { id } }", "variables": {"u": user}}
    assert GraphQL(dev, token).data(query["query"], u=user)["user"]["id"] == user
    off = demo_stack.settings.model_copy(update={"environment": "development", "demo": False})
    with TestClient(create_app(off)) as client:
        refused = client.post("/graphql", json=query, headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_development_serves_the_page_and_its_modules_under_the_csp(dev: TestClient) -> None:
    assert dev.get("/demo").headers["location"].endswith("/demo/")
    page = dev.get("/demo/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert '<script type="module" src="/demo/demo.js"></script>' in html
    # Nothing inline: the CSP would refuse it.
    assert html.count("<script") == 1 and "style=" not in html and " on" + "click=" not in html
    for path, kind in (("demo.js", "javascript"), ("api.js", "javascript"), ("demo.css", "text/css")):
        response = dev.get(f"/demo/{path}")
        assert response.status_code == 200 and kind in response.headers["content-type"], path
    assert "https://" not in dev.get("/demo/demo.js").text + dev.get("/demo/api.js").text  # no CDN


BAD_INPUTS: list[tuple[str, dict[str, str], bytes | Any, int, str]] = [
    ("not JSON's type", {"content-type": "text/plain"}, b'{"userId": 1}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("not JSON", {}, b"{", 400, "BAD_REQUEST"),
    ("not UTF-8", {}, b'{"userId": "\xff"}', 400, "BAD_REQUEST"),
    ("a list", {}, [1], 400, "BAD_REQUEST"),
    ("nothing asked", {}, {}, 400, "BAD_USER_INPUT"),
    ("a string id", {}, {"userId": "1"}, 400, "BAD_USER_INPUT"),
    ("a boolean id", {}, {"userId": True}, 400, "BAD_USER_INPUT"),
    ("a fractional id", {}, {"userId": 1.5}, 400, "BAD_USER_INPUT"),
    ("id 0", {}, {"userId": 0}, 400, "BAD_USER_INPUT"),
    ("a huge id", {}, {"userId": 2**40}, 400, "BAD_USER_INPUT"),
    ("nobody's id", {}, {"userId": 987654}, 404, "NOT_FOUND"),
    ("both", {}, {"userId": 1, "newUser": NEW_USER}, 400, "BAD_USER_INPUT"),
    ("newUser not an object", {}, {"newUser": "F"}, 400, "BAD_USER_INPUT"),
    ("a missing field", {}, {"newUser": {"gender": "F", "age": 25, "occupation": 1}}, 400, "BAD_USER_INPUT"),
    ("an unknown gender", {}, {"newUser": {**NEW_USER, "gender": "X"}}, 400, "BAD_USER_INPUT"),
    ("an age off the buckets", {}, {"newUser": {**NEW_USER, "age": 20}}, 400, "BAD_USER_INPUT"),
    ("an unknown occupation", {}, {"newUser": {**NEW_USER, "occupation": 21}}, 400, "BAD_USER_INPUT"),
    ("an age as text", {}, {"newUser": {**NEW_USER, "age": "25"}}, 400, "BAD_USER_INPUT"),
    ("a numeric zip", {}, {"newUser": {**NEW_USER, "zipCode": 10001}}, 400, "BAD_USER_INPUT"),
    ("an empty zip", {}, {"newUser": {**NEW_USER, "zipCode": " "}}, 400, "BAD_USER_INPUT"),
    ("a long zip", {}, {"newUser": {**NEW_USER, "zipCode": "1" * 11}}, 400, "BAD_USER_INPUT"),
    ("too large", {}, {"userId": 1, "pad": "x" * MAX_BODY_BYTES}, 413, "PAYLOAD_TOO_LARGE"),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_a_4xx_with_a_code_and_creates_nobody(
    dev: TestClient, demo_stack: Stack, headers: dict[str, str], body: Any, status: int, code: str
) -> None:
    before = _users(demo_stack)
    if isinstance(body, bytes):
        response = dev.post(
            "/demo/session", content=body, headers={"content-type": "application/json", **headers}
        )
    else:
        response = dev.post("/demo/session", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code
    assert error["message"] and "Traceback" not in response.text
    assert _users(demo_stack) == before


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"userId": 1', "not valid JSON: unexpected end of data at byte 12"),
        (b'{"userId": "\xff"}', "not UTF-8"),
        (b"  ", "empty"),
    ],
)
def test_a_body_that_is_not_json_is_told_what_is_wrong(dev: TestClient, body: bytes, problem: str) -> None:
    response = dev.post("/demo/session", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert problem in response.json()["errors"][0]["message"]


def test_only_post_reaches_the_session_route(dev: TestClient) -> None:
    assert dev.get("/demo/session").status_code == 404  # the static files have no such file


def test_a_minted_token_reads_its_user_s_recommendations_and_no_one_else_s(
    dev: TestClient, demo_stack: Stack
) -> None:
    me, other = demo_stack.dataset.users[0].id, demo_stack.dataset.users[1].id
    response = dev.post("/demo/session", json={"userId": me})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    session = response.json()
    assert session["userId"] == me and session["expiresAt"].endswith("Z")
    mine = GraphQL(dev, session["token"])

    recommended = mine.data(RECS, u=me)["recommendations"]
    assert len(recommended) == 10 and {r["source"] for r in recommended} == {"model"}
    assert mine.data("query($u: Int!) { user(id: $u) { id } }", u=me)["user"]["id"] == me
    assert mine.error_code(RECS, u=other) == "FORBIDDEN"
    assert mine.error_code("query($u: Int!) { user(id: $u) { id } }", u=other) == "FORBIDDEN"
    rate = "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 1) { rating } }"
    assert mine.error_code(rate, u=other, m=recommended[0]["movie"]["id"]) == "FORBIDDEN"

    # The token rates as its user, and the next recommendations leave that movie out at once.
    top = recommended[0]["movie"]["id"]
    assert mine.data(rate, u=me, m=top)["rateMovie"]["rating"] == 1
    after = [r["movie"]["id"] for r in mine.data(RECS, u=me)["recommendations"]]
    assert top not in after and len(after) == 10

    # It lives MOVIEREC_TOKEN_TTL_S; a token of the expired kind is refused as a whole (the page then
    # signs in again).
    secret = demo_stack.settings.token_secret.get_secret_value()
    claims = read_user_token(secret, session["token"])
    assert claims is not None and claims.user_id == me and claims.key_id == DEMO_MINTER
    stale, _ = issue_user_token(secret, me, DEMO_MINTER, -1)
    assert (
        dev.post(
            "/graphql", json={"query": "{ genres }"}, headers={"authorization": f"Bearer {stale}"}
        ).status_code
        == 401
    )
    expires = datetime.fromisoformat(session["expiresAt"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + demo_stack.settings.token_ttl_s)) < 60


def test_a_new_user_is_created_signed_in_and_recommended_to(dev: TestClient, demo_stack: Stack) -> None:
    before = _users(demo_stack)
    session = dev.post("/demo/session", json={"newUser": NEW_USER}).json()
    assert _users(demo_stack) == before + 1
    new = GraphQL(dev, session["token"])
    user = new.data(
        "query($u: Int!) { user(id: $u) { gender age occupationId zipCode } }", u=session["userId"]
    )["user"]
    assert user == {"gender": "F", "age": 25, "occupationId": 12, "zipCode": "10001"}
    # No ratings yet: the popular movies; after a rating, the model's.
    assert {r["source"] for r in new.data(RECS, u=session["userId"])["recommendations"]} == {"popularity"}
    new.data(
        "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 5) { rating } }",
        u=session["userId"],
        m=demo_stack.dataset.movies[0].id,
    )
    assert {r["source"] for r in new.data(RECS, u=session["userId"])["recommendations"]} == {"model"}
    # The admin's key sees the same user: created in the database, not in the demo.
    assert GraphQL(dev, demo_stack.api_key).data(
        "query($u: Int!) { user(id: $u) { id } }", u=session["userId"]
    )


def test_the_session_route_counts_against_the_address_s_rate_limit(demo_stack: Stack) -> None:
    settings = demo_stack.settings.model_copy(update={"demo": True, "rate_limit_address": "2/minute"})
    user_id = demo_stack.dataset.users[0].id
    with TestClient(create_app(settings)) as client:
        statuses = [client.post("/demo/session", json={"userId": user_id}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(statuses[2].headers["retry-after"]) >= 1


def _expected_starters(stack: Stack) -> list[dict[str, Any]]:
    """Return the starters read from the database: the user with the most ratings (the lowest id of
    equals) and the newest user without any."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            counts = dict(
                session.execute(select(Rating.user_id, func.count()).group_by(Rating.user_id)).all()
            )
            users = session.scalars(select(User.id)).all()
    finally:
        engine.dispose()
    active = min(counts, key=lambda u: (-counts[u], u))
    starters = [{"kind": "active", "userId": active, "ratings": counts[active]}]
    unrated = [u for u in users if u not in counts]
    if unrated:
        starters.append({"kind": "unrated", "userId": max(unrated), "ratings": 0})
    return starters


def test_starters_are_the_most_active_user_and_the_newest_without_ratings_read_once_a_minute(
    demo_stack: Stack, statements: StatementCounter
) -> None:
    settings = demo_stack.settings.model_copy(update={"demo": True})
    with TestClient(create_app(settings)) as client:
        answer = client.get("/demo/starters")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert answer.json() == {"starters": _expected_starters(demo_stack)}
        new_user = client.post("/demo/session", json={"newUser": NEW_USER}).json()["userId"]
        read = statements.count
        # Kept for a minute: no statement, and the new user is not offered yet.
        assert client.get("/demo/starters").json() == answer.json()
        assert statements.count == read
        assert client.post("/demo/starters").status_code == 405
    with TestClient(create_app(settings)) as client:
        expected = _expected_starters(demo_stack)
        assert expected[-1] == {"kind": "unrated", "userId": new_user, "ratings": 0}
        assert client.get("/demo/starters").json() == {"starters": expected}


def test_the_active_user_is_read_from_a_bounded_sample_and_counted_whole(
    demo_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(demo_stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            lowest = session.scalars(select(func.min(Rating.user_id))).one()
            total = session.scalars(select(func.count()).where(Rating.user_id == lowest)).one()
            # A sample of one rating: the first user in key order, every one of their ratings counted.
            monkeypatch.setattr(starters, "SAMPLE_RATINGS", 1)
            assert starters.read_starters(session=session)[0] == starters.Starter("active", lowest, total)
    finally:
        engine.dispose()
