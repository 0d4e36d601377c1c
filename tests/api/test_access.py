"""Who may do what: every query and mutation against no credential, a key of the wrong scope,
another user's token, an expired token and the right credential; anonymous reads switched off;
rate limits, in-process and shared through Redis."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from api.access.keys import create_key, revoke_key
from api.access.tokens import issue_user_token
from api.app import create_app
from api.db import make_engine, make_session_factory
from tests.api.conftest import GraphQL, Stack, StatementCounter

TOKEN_SECRET = "test-token-secret-0123456789-0123456789"  # tests/api/conftest.py make_settings


@dataclass(frozen=True)
class Operation:
    query: str
    variables: Callable[[Stack, int], dict[str, Any]]  # (stack, the user acted on)
    scope: str | None  # on an API key; None: public
    own: bool = False  # a token of the user acted on may do it too


def _movie(stack: Stack) -> int:
    return stack.dataset.movies[0].id


OPERATIONS = {
    "movie": Operation("query($m: Int!) { movie(id: $m) { id } }", lambda s, u: {"m": _movie(s)}, None),
    "movies": Operation("{ movies(first: 2) { nodes { id } } }", lambda s, u: {}, None),
    "genres": Operation("{ genres }", lambda s, u: {}, None),
    "similarMovies": Operation(
        "query($m: Int!) { similarMovies(movieId: $m, limit: 2) { score } }",
        lambda s, u: {"m": _movie(s)},
        None,
    ),
    "recommendationsForProfile": Operation(
        '{ recommendationsForProfile(gender: "F", age: 25, occupation: 4, ratedMovies: []) { score } }',
        lambda s, u: {},
        None,
    ),
    "modelInfo": Operation("{ modelInfo { version } }", lambda s, u: {}, None),
    "user": Operation(
        "query($u: Int!) { user(id: $u) { id ratings(first: 1) { nodes { rating } } } }",
        lambda s, u: {"u": u},
        "read",
        own=True,
    ),
    "users": Operation("{ users(first: 2) { nodes { id } } }", lambda s, u: {}, "read"),
    "recommendations": Operation(
        "query($u: Int!) { recommendations(userId: $u, limit: 2) { score } }",
        lambda s, u: {"u": u},
        "read",
        own=True,
    ),
    "createUser": Operation(
        'mutation { createUser(input: {gender: "M", age: 25, occupation: 1, zipCode: "02139"}) { id } }',
        lambda s, u: {},
        "users:write",
    ),
    "rateMovie": Operation(
        "mutation($u: Int!, $m: Int!) { rateMovie(userId: $u, movieId: $m, rating: 3) { rating } }",
        lambda s, u: {"u": u, "m": _movie(s)},
        "users:write",
        own=True,
    ),
    "deleteRating": Operation(
        # Rated just before by the same credential (see _run), so that deleting it succeeds.
        "mutation($u: Int!, $m: Int!) { deleteRating(userId: $u, movieId: $m) }",
        lambda s, u: {"u": u, "m": _movie(s)},
        "users:write",
        own=True,
    ),
    "createMovie": Operation(
        'mutation { createMovie(input: {title: "Access Test (2001)", year: 2001, genres: ["Drama"]}) { id } }',
        lambda s, u: {},
        "catalogue:write",
    ),
    "issueUserToken": Operation(
        "mutation($u: Int!) { issueUserToken(userId: $u, ttlSeconds: 120) { token userId } }",
        lambda s, u: {"u": u},
        "tokens:issue",
    ),
}


@dataclass
class Credentials:
    stack: Stack
    client: TestClient
    keys: dict[str, str]  # scope -> a key of that scope only
    user: int  # the user the operations act on
    other_user: int

    @property
    def minter(self) -> str:
        """Return the id of the key that mints the tests' tokens (the tokens:issue one)."""
        return self.keys["tokens:issue"].split("_")[1]

    def token(self, user: int, ttl_s: int = 300) -> str:
        return issue_user_token(TOKEN_SECRET, user, self.minter, ttl_s)[0]

    def gql(self, credential: str | None) -> GraphQL:
        return GraphQL(self.client, credential)


@pytest.fixture(scope="module")
def credentials(stack: Stack, client: TestClient) -> Credentials:
    engine = make_engine(stack.settings.resolved_database_url)
    with make_session_factory(engine).begin() as session:
        keys = {scope: create_key(session=session, name=scope, scopes=[scope])[1] for scope in
                ("read", "users:write", "catalogue:write", "tokens:issue")}  # fmt: skip
    engine.dispose()
    return Credentials(stack, client, keys, stack.dataset.users[7].id, stack.dataset.users[8].id)


def _run(creds: Credentials, name: str, credential: str | None) -> dict[str, Any]:
    operation = OPERATIONS[name]
    gql = creds.gql(credential)
    if name == "deleteRating":  # something to delete, rated with the test's key
        creds.gql(creds.stack.api_key).data(
            OPERATIONS["rateMovie"].query, u=creds.user, m=_movie(creds.stack)
        )
    return gql(operation.query, **operation.variables(creds.stack, creds.user))


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or []
    assert len(errors) <= 1, errors
    return errors[0]["extensions"]["code"] if errors else None


def _wrong_scope(operation: Operation) -> str:
    return next(s for s in ("read", "users:write", "catalogue:write", "tokens:issue") if s != operation.scope)


@pytest.mark.parametrize("name", OPERATIONS)
def test_without_a_credential(credentials: Credentials, name: str) -> None:
    expected = None if OPERATIONS[name].scope is None else "UNAUTHENTICATED"
    assert _code(_run(credentials, name, None)) == expected


@pytest.mark.parametrize("name", OPERATIONS)
def test_with_a_key_of_another_scope(credentials: Credentials, name: str) -> None:
    operation = OPERATIONS[name]
    expected = None if operation.scope is None else "FORBIDDEN"
    assert _code(_run(credentials, name, credentials.keys[_wrong_scope(operation)])) == expected


@pytest.mark.parametrize("name", OPERATIONS)
def test_with_another_user_s_token(credentials: Credentials, name: str) -> None:
    expected = None if OPERATIONS[name].scope is None else "FORBIDDEN"
    assert _code(_run(credentials, name, credentials.token(credentials.other_user))) == expected


@pytest.mark.parametrize("name", OPERATIONS)
def test_with_an_expired_or_forged_token(credentials: Credentials, name: str) -> None:
    """A credential that does not check out is refused outright, even for public reads."""
    operation = OPERATIONS[name]
    forged = issue_user_token(
        "another-secret-0123456789-0123456789", credentials.user, credentials.minter, 300
    )[0]
    for credential in (credentials.token(credentials.user, ttl_s=-60), forged, "mrk_0000_nope", "garbage"):
        response = credentials.client.post(
            "/graphql",
            json={
                "query": operation.query,
                "variables": operation.variables(credentials.stack, credentials.user),
            },
            headers={"authorization": f"Bearer {credential}"},
        )
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert _code(response.json()) == "UNAUTHENTICATED"


@pytest.mark.parametrize("name", OPERATIONS)
def test_with_the_right_credential(credentials: Credentials, name: str) -> None:
    operation = OPERATIONS[name]
    right = [credentials.keys[operation.scope]] if operation.scope else [credentials.token(credentials.user)]
    if operation.own:
        right.append(credentials.token(credentials.user))
    for credential in right:
        body = _run(credentials, name, credential)
        assert _code(body) is None, body


def test_a_user_token_acts_as_its_user_only(credentials: Credentials) -> None:
    issued = credentials.gql(credentials.keys["tokens:issue"]).data(
        "mutation($u: Int!) { issueUserToken(userId: $u) { token userId expiresAt } }", u=credentials.user
    )["issueUserToken"]
    assert issued["userId"] == credentials.user
    as_user = credentials.gql(issued["token"])
    assert (
        as_user.data("query($u: Int!) { user(id: $u) { id } }", u=credentials.user)["user"]["id"]
        == credentials.user
    )
    assert (
        as_user.error_code("query($u: Int!) { user(id: $u) { id } }", u=credentials.other_user) == "FORBIDDEN"
    )
    assert (
        as_user.error_code("{ issueUserToken(userId: 1) { token } }".replace("{ i", "mutation { i"))
        == "FORBIDDEN"
    )


def test_issuing_for_nobody_or_for_too_long_is_refused(credentials: Credentials) -> None:
    issuer = credentials.gql(credentials.keys["tokens:issue"])
    assert issuer.error_code("mutation { issueUserToken(userId: 987654) { token } }") == "NOT_FOUND"
    query = "mutation($u: Int!) { issueUserToken(userId: $u, ttlSeconds: 999999) { token } }"
    assert issuer.error_code(query, u=credentials.user) == "BAD_USER_INPUT"


def test_a_revoked_key_stops_working(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.access import keys

    monkeypatch.setattr(keys, "KEY_CACHE_S", 0.01)  # what every worker holds, expired at once
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        row, key = create_key(session=session, name="soon revoked", scopes=["read"])
        key_id = row.key_id
    with TestClient(create_app(stack.settings)) as client:
        gql = GraphQL(client, key)
        assert gql.data("{ users(first: 1) { nodes { id } } }")["users"]["nodes"]
        with sessions.begin() as session:
            assert revoke_key(session=session, key_id=key_id).last_used_at is not None  # its use is recorded
        time.sleep(0.05)
        assert client.post("/graphql", json={"query": "{ genres }"}, headers=gql.headers).status_code == 401
    engine.dispose()


def test_revoking_a_key_ends_the_user_tokens_it_minted(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.access import keys

    monkeypatch.setattr(keys, "KEY_CACHE_S", 0.01)  # what every worker holds, expired at once
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        minter, minter_key = create_key(session=session, name="front end", scopes=["tokens:issue"])
        key_id = minter.key_id
    user = stack.dataset.users[3].id
    own = "query($u: Int!) { user(id: $u) { id } }"
    with TestClient(create_app(stack.settings)) as client:
        issue = "mutation($u: Int!) { issueUserToken(userId: $u) { token } }"
        token = GraphQL(client, minter_key).data(issue, u=user)["issueUserToken"]["token"]
        other = GraphQL(client, stack.api_key).data(issue, u=user)["issueUserToken"]["token"]
        assert GraphQL(client, token).data(own, u=user)["user"]["id"] == user
        with sessions.begin() as session:
            revoke_key(session=session, key_id=key_id)
        time.sleep(0.05)
        refused = client.post(
            "/graphql", json={"query": own, "variables": {"u": user}}, headers=GraphQL(client, token).headers
        )
        assert (
            refused.status_code == 401
            and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        )
        assert GraphQL(client, other).data(own, u=user)["user"]["id"] == user  # minted by a key still live
    engine.dispose()


def test_token_lifetimes_come_from_the_settings(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"token_ttl_s": 120, "token_max_ttl_s": 600})
    user = stack.dataset.users[4].id
    with TestClient(create_app(settings)) as client:
        issuer = GraphQL(client, stack.api_key)
        issue = "mutation($u: Int!, $t: Int) { issueUserToken(userId: $u, ttlSeconds: $t) { expiresAt } }"
        default = issuer.data(issue, u=user, t=None)["issueUserToken"]["expiresAt"]
        expires = datetime.fromisoformat(default.replace("Z", "+00:00")).timestamp()
        assert abs(expires - (time.time() + 120)) < 30
        assert issuer.data(issue, u=user, t=600)["issueUserToken"]["expiresAt"]
        assert issuer.error_code(issue, u=user, t=601) == "BAD_USER_INPUT"
        assert issuer.error_code(issue, u=user, t=59) == "BAD_USER_INPUT"


def test_anonymous_reads_can_be_switched_off(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"anonymous_reads": False})
    with TestClient(create_app(settings)) as client:
        assert GraphQL(client, None).error_code("{ genres }") == "UNAUTHENTICATED"
        assert GraphQL(client, stack.api_key).data("{ genres }")["genres"]


def _limited_app(stack: Stack, **limits: str) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(update=limits)
    with TestClient(create_app(settings)) as client:
        yield client


def test_rate_limits_answer_429_with_retry_after(stack: Stack) -> None:
    for client in _limited_app(stack, rate_limit_address="5/minute", rate_limit_key="3/minute"):
        statuses = [client.post("/graphql", json={"query": "{ genres }"}).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        refused = client.post("/graphql", json={"query": "{ genres }"})
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _code(refused.json()) == "RATE_LIMITED"
        keyed = GraphQL(client, stack.api_key)  # a key has a count of its own
        answers = [
            client.post("/graphql", json={"query": "{ genres }"}, headers=keyed.headers) for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        # Guessing keys counts against the address: no database lookup per guess past the limit.
        guess = client.post(
            "/graphql", json={"query": "{ genres }"}, headers={"authorization": "Bearer mrk_1_x"}
        )
        assert guess.status_code == 429


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("MOVIEREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.flushdb()
        client.close()
    except redis.RedisError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"Redis at {url} is unreachable (CI=true: the shared rate-limit test must run): {error}"
            )
        pytest.skip(f"Redis at {url} is unreachable: {error}")
    return url


def test_rate_limits_are_shared_through_redis(stack: Stack, redis_url: str) -> None:
    """Two apps (as two workers or replicas) count one address together."""
    first = _limited_app(stack, rate_limit_address="6/minute", redis_url=redis_url)
    second = _limited_app(stack, rate_limit_address="6/minute", redis_url=redis_url)
    for one in first:
        for other in second:
            statuses = [
                c.post("/graphql", json={"query": "{ genres }"}).status_code for c in (one, other) * 4
            ]
            assert statuses == [200] * 6 + [429] * 2


def test_the_keys_command_creates_lists_and_revokes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    monkeypatch.setenv("MOVIEREC_DATABASE_URL", stack.settings.resolved_database_url)
    monkeypatch.setenv("MOVIEREC_ENVIRONMENT", "development")
    assert main(["keys", "create", "--name", "cli shop", "--scope", "read", "--scope", "tokens:issue"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("mrk_")
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    key_id = key.split("_")[1]
    line = next(line for line in listed.splitlines() if line.startswith(key_id))
    assert "cli shop" in line and "read tokens:issue" in line and "active" in line and key not in listed
    assert main(["keys", "revoke", key_id]) == 0
    assert "revoked" in next(line for line in _listed(main, capsys) if line.startswith(key_id))
    assert main(["keys", "revoke", "nosuchkey"]) == 1
    assert "no API key" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses an unknown scope
        main(["keys", "create", "--name", "x", "--scope", "everything"])


def _listed(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["keys", "list"]) == 0
    return capsys.readouterr().out.splitlines()


def test_made_up_keys_cost_no_more_reads_than_the_refusals_they_get(
    stack: Stack, statements: StatementCounter
) -> None:
    """600 guessed keys from one address: each one the address's rate lets through costs at most one
    read and gets 401; the rest get 429 before anything is read."""
    for client in _limited_app(stack, rate_limit_address="20/hour"):
        statements.count = 0
        statuses = []
        for _ in range(600):
            guess = f"mrk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
            response = client.post(
                "/graphql", json={"query": "{ genres }"}, headers={"authorization": f"Bearer {guess}"}
            )
            statuses.append(response.status_code)
        refused = statuses.count(401)
        assert refused == 20 and statuses.count(429) == 580
        assert statements.count <= refused


def test_a_made_up_key_id_is_read_once_whatever_secret_comes_with_it(
    stack: Stack, statements: StatementCounter
) -> None:
    key_id = secrets.token_hex(6)
    for client in _limited_app(stack):
        statements.count = 0
        statuses = {
            client.post(
                "/graphql",
                json={"query": "{ genres }"},
                headers={"authorization": f"Bearer mrk_{key_id}_{secrets.token_urlsafe(32)}"},
            ).status_code
            for _ in range(50)
        }
        assert statuses == {401}
        assert statements.count <= 1
