"""GraphQL queries through the real app: catalogue, users, pagination, limits and error codes."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, event
from starlette.testclient import TestClient

from api.app import create_app
from api.graphql.pagination import encode_cursor
from api.ops import may_scrape
from tests.api.conftest import GraphQL, Stack, StatementCounter

MOVIE_FIELDS = "id title year genres averageRating ratingsCount"


def test_movie_by_id_matches_the_data(gql: GraphQL, stack: Stack) -> None:
    movie = stack.dataset.movies[3]
    got = gql.data(f"query($id: Int!) {{ movie(id: $id) {{ {MOVIE_FIELDS} }} }}", id=movie.id)["movie"]
    ratings = stack.dataset.ratings
    mine = ratings.rating[ratings.movie_id == movie.id]
    assert (got["id"], got["title"], got["year"]) == (movie.id, movie.title, movie.year)
    assert got["genres"] == sorted(movie.genres)
    assert got["ratingsCount"] == mine.size
    assert got["averageRating"] == pytest.approx(mine.mean(), abs=1e-3)


def test_display_titles_put_the_trailing_article_in_front(gql: GraphQL, stack: Stack) -> None:
    moved = [m for m in stack.dataset.movies if f", The ({m.year})" in m.title][:3]
    plain = [m for m in stack.dataset.movies if ", " not in m.title][:2]
    assert len(moved) == 3 and len(plain) == 2
    query = "query($id: Int!) { movie(id: $id) { title displayTitle } }"
    for movie in moved:
        name = movie.title.removesuffix(f", The ({movie.year})")
        got = gql.data(query, id=movie.id)["movie"]
        assert got == {"title": movie.title, "displayTitle": f"The {name} ({movie.year})"}
    for movie in plain:
        assert gql.data(query, id=movie.id)["movie"] == {"title": movie.title, "displayTitle": movie.title}
    search = "query($q: String!) { movies(search: $q, first: 1) { nodes { displayTitle } } }"
    name = moved[0].title.removesuffix(f", The ({moved[0].year})")
    assert gql.data(search, q=name)["movies"]["nodes"] == [{"displayTitle": f"The {name} ({moved[0].year})"}]


def test_unknown_movie_and_user_are_not_found(gql: GraphQL) -> None:
    assert gql.error_code("{ movie(id: 987654) { title } }") == "NOT_FOUND"
    assert gql.error_code("{ user(id: -3) { id } }") == "NOT_FOUND"


def test_a_missing_lookup_nulls_only_its_own_field(gql: GraphQL) -> None:
    body = gql("{ genres user(id: 99999) { id } movie(id: 987654) { id } }")
    assert body["data"]["user"] is None and body["data"]["movie"] is None
    assert "Drama" in body["data"]["genres"]
    assert sorted((e["path"], e["extensions"]["code"]) for e in body["errors"]) == [
        (["movie"], "NOT_FOUND"),
        (["user"], "NOT_FOUND"),
    ]


def test_movies_paginate_without_gaps_or_repeats(gql: GraphQL, stack: Stack) -> None:
    query = "query($after: String) { movies(first: 40, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }"
    seen: list[int] = []
    after = None
    while True:
        page = gql.data(query, after=after)["movies"]
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(set(seen))  # increasing: no repeats, no reordering
    assert {m.id for m in stack.dataset.movies} <= set(seen)  # no gaps (other tests may add movies)


def test_movies_filter_by_search_genre_and_years(gql: GraphQL, stack: Stack) -> None:
    query = """query { movies(first: 100, genre: "Drama", yearFrom: 1970, yearTo: 1995) {
        nodes { title year genres } } }"""
    nodes = gql.data(query)["movies"]["nodes"]
    expected = [m for m in stack.dataset.movies if "Drama" in m.genres and m.year and 1970 <= m.year <= 1995]
    assert len(nodes) == min(100, len(expected)) > 0
    assert all("Drama" in n["genres"] and 1970 <= n["year"] <= 1995 for n in nodes)
    word = stack.dataset.movies[0].title.split()[0]
    found = gql.data(
        "query($s: String) { movies(first: 100, search: $s) { nodes { title } } }", s=word.lower()
    )
    assert found["movies"]["nodes"] and all(
        word.lower() in n["title"].lower() for n in found["movies"]["nodes"]
    )


def test_search_text_is_not_a_pattern(gql: GraphQL) -> None:
    assert gql.data('{ movies(search: "%") { nodes { id } } }')["movies"]["nodes"] == []
    assert gql.data('{ movies(search: "_") { nodes { id } } }')["movies"]["nodes"] == []


@pytest.mark.parametrize(
    "query",
    [
        "{ movies(first: 0) { nodes { id } } }",
        "{ movies(first: 101) { nodes { id } } }",
        '{ movies(after: "not-a-cursor") { nodes { id } } }',
        '{ movies(after: "dXNlcjox") { nodes { id } } }',  # a user cursor
        # Crafted cursors: too big for any id column, a digit Python reads but SQL does not, huge.
        *(
            f'{{ {field}(after: "{encode_cursor(kind, value)}") {{ nodes {{ id }} }} }}'
            for field, kind in (("movies", "movie"), ("users", "user"))
            for value in ("9" * 20, "\u00b2", "1" * 5000, "2147483648")
        ),
        *(
            '{ user(id: 1) { ratings(after: "CURSOR") { nodes { movieId } } } }'.replace(
                "CURSOR", encode_cursor("rating", value)
            )
            for value in ("2000-01-01T00:00:00|" + "9" * 20, "x|1", "2000-01-01T00:00:00|²")
        ),
        '{ movies(genre: "Noir") { nodes { id } } }',
        "{ users(first: -1) { nodes { id } } }",
        "{ recommendations(userId: 1, limit: 1000) { score } }",
        "{ movie(id: 1) { similar(limit: 0) { score } } }",
    ],
)
def test_bad_arguments_are_bad_user_input(gql: GraphQL, query: str) -> None:
    assert gql.error_code(query) == "BAD_USER_INPUT"


def test_users_and_their_ratings_newest_first(gql: GraphQL, stack: Stack) -> None:
    user = stack.dataset.users[5]
    query = """query($id: Int!, $after: String) { user(id: $id) { gender age occupationId occupation zipCode
        ratings(first: 7, after: $after) { nodes { movieId rating ratedAt } pageInfo { hasNextPage endCursor } } } }"""
    first = gql.data(query, id=user.id)["user"]
    assert (first["gender"], first["age"], first["occupationId"], first["zipCode"]) == (
        user.gender,
        user.age,
        user.occupation,
        user.zip_code,
    )
    assert first["occupation"]
    second = gql.data(query, id=user.id, after=first["ratings"]["pageInfo"]["endCursor"])["user"]
    stamps = [n["ratedAt"] for n in first["ratings"]["nodes"] + second["ratings"]["nodes"]]
    assert stamps == sorted(stamps, reverse=True)
    # UTC said on the wire: a browser's `new Date()` reads a stamp without an offset as local time
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps
    movies = [n["movieId"] for n in first["ratings"]["nodes"] + second["ratings"]["nodes"]]
    assert len(set(movies)) == 14


def test_users_list_and_genres(gql: GraphQL, stack: Stack) -> None:
    data = gql.data("{ users(first: 3) { nodes { id } } genres }")
    assert [n["id"] for n in data["users"]["nodes"]] == [u.id for u in stack.dataset.users[:3]]
    assert len(data["genres"]) == 18 and "Film-Noir" in data["genres"]


def test_fifty_movies_with_relations_take_a_constant_number_of_statements(
    gql: GraphQL, statements: StatementCounter
) -> None:
    query = "query($n: Int!) { movies(first: $n) { nodes { id title genres averageRating ratingsCount } } }"
    gql.data(query, n=5)
    statements.count = 0
    gql.data(query, n=5)
    few = statements.count
    statements.count = 0
    data = gql.data(query, n=50)
    assert len(data["movies"]["nodes"]) == 50
    # The page and one statement per relation (genres, rating stats), each in a worker thread's own
    # session (SQLite counts its BEGIN as a statement too): the same for 5 movies as for 50.
    assert statements.count == few <= 6


def test_depth_and_alias_limits_refuse_expensive_queries(gql: GraphQL) -> None:
    deep = "{ user(id: 1) { ratings { nodes { movie { similar { movie { similar { movie { similar { movie { title } } } } } } } } } } }"
    refused = gql(deep)  # too deep, and its similar-under-similar costs too much as well
    assert refused["data"] is None and {e["extensions"]["code"] for e in refused["errors"]} == {
        "QUERY_TOO_EXPENSIVE"
    }
    aliases = "{ " + " ".join(f"m{i}: movie(id: 1) {{ id }}" for i in range(200)) + " }"
    assert gql.error_code(aliases) == "QUERY_TOO_EXPENSIVE"
    # Within the depth and alias limits, but more tokens than MAX_TOKENS: refused while parsing.
    tokens = "{ " + " ".join(f"m{i}: movie(id: 1) {{ {' '.join(['id'] * 100)} }}" for i in range(25)) + " }"
    assert gql.error_code(tokens) == "QUERY_TOO_EXPENSIVE"


def test_every_operation_gives_its_database_connection_back(gql: GraphQL) -> None:
    """The operation's session is closed when it ends: after success, a client error and a refusal."""
    pool = gql.client.app_state["movierec"].engine.pool
    gql.data("{ movie(id: 1) { title } genres }")
    assert gql.error_code("{ movie(id: 999999) { title } }") == "NOT_FOUND"
    assert gql.error_code("{ movie(id: 1) { nonsense } }") == "GRAPHQL_VALIDATION_FAILED"
    assert pool.checkedout() == 0


def test_malformed_queries_get_codes_not_traces(gql: GraphQL) -> None:
    assert gql.error_code("{ movie(id: 1) { title ") == "GRAPHQL_PARSE_FAILED"
    assert gql.error_code("{ movie(id: 1) { nonsense } }") == "GRAPHQL_VALIDATION_FAILED"


BY_ID = "query($id: Int!) { movie(id: $id) { id } }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ movie(id: 1) { nonsense } }", {}),  # an unknown field
        ('{ movie(id: "1") { id } }', {}),  # an argument of the wrong type, written in the document
        ("{ movie(id: 99999999999) { id } }", {}),  # an Int out of range, written
        (BY_ID, {"id": "abc"}),  # a variable of the wrong type
        (BY_ID, {"id": 2**40}),  # an Int out of range, in a variable
        (BY_ID, {}),  # a required variable missing
        (BY_ID, {"id": None}),
        ("query($g: Gnre) { movies(genre: $g) { nodes { id } } }", {"g": "Drama"}),  # an unknown type
        ('mutation { createUser(input: {gendr: "F"}) { id } }', {}),  # an unknown input field
        ("query($i: CreateUserInput!) { createUser(input: $i) { id } }", {"i": {"gendr": "F"}}),
    ],
)
def test_every_error_found_before_execution_has_one_code(
    gql: GraphQL, query: str, variables: dict[str, Any]
) -> None:
    """Whether the operation or its variables do not fit the schema, nothing ran: one code says so."""
    body = gql(query, **variables)
    assert body.get("data") is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"], body


def test_values_refused_while_executing_are_bad_user_input(gql: GraphQL) -> None:
    """An argument the operation may give, with a value the service refuses: the operation ran."""
    assert gql.error_code("{ movies(first: -1) { nodes { id } } }") == "BAD_USER_INPUT"
    # `first` may be left out (it defaults to 20) but not given as null: found when the field runs.
    query = "query($n: Int) { movies(first: $n) { nodes { id } } }"
    assert gql.error_code(query, n=None) == "BAD_USER_INPUT"
    assert len(gql.data(query)["movies"]["nodes"]) == 20


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"query": "{ genres }", "variables": {"a"', "not valid JSON: unexpected end of data at byte 41"),
        ('{"query": "{ movies(search: \\"é\\")', "not valid JSON: unexpected end of data at byte 35"),
        (b'{"query": "{ genres }"} x', "not valid JSON: unexpected content after document at byte 24"),
        (b'{"query" "{ genres }"}', "not valid JSON: unexpected character, expected ':' after key at byte 9"),
        (b'{"query": "\xff"}', "not UTF-8: invalid start byte at byte 11"),
        (b'{"query": "\xc3"}', "not UTF-8: invalid continuation byte at byte 11"),
        (b'{"query": "\xed\xa0\x80"}', "not UTF-8: invalid continuation byte at byte 11"),  # a surrogate
        (b"", "empty"),
        (b" \n", "empty"),
    ],
)
def test_a_body_that_is_not_json_is_told_what_is_wrong(gql: GraphQL, body: bytes | str, message: str) -> None:
    content = body.encode() if isinstance(body, str) else body
    response = gql.client.post("/graphql", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": f"the request body is {message}", "extensions": {"code": "BAD_REQUEST"}}]
    }


def test_oversized_body_is_refused(gql: GraphQL) -> None:
    response = gql.client.post("/graphql", json={"query": "{ genres }", "pad": "x" * 100_000})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    chunked = gql.client.post(  # no Content-Length: counted as it is read
        "/graphql", content=iter([b'{"query": "{ genres }", "pad": "'] + [b"x" * 16_384] * 20 + [b'"}']),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert chunked.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_health_and_readiness(gql: GraphQL) -> None:
    assert gql.client.get("/healthz").json() == {"status": "ok"}
    ready = gql.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "model": "ok", "milvus": "ok"}


def test_a_flood_of_readiness_probes_checks_at_most_once_a_second(stack: Stack) -> None:
    checks = []

    def count(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement == "SELECT 1":  # the readiness check's own statement
            checks.append(statement)

    with TestClient(create_app(stack.settings)) as client:
        event.listen(Engine, "before_cursor_execute", count)
        try:
            started = time.monotonic()
            with ThreadPoolExecutor(8) as probes:
                answers = list(probes.map(lambda _: client.get("/readyz"), range(200)))
            elapsed = time.monotonic() - started
        finally:
            event.remove(Engine, "before_cursor_execute", count)
    assert {a.status_code for a in answers} == {200}
    assert all(a.json()["checks"]["database"] == "ok" for a in answers)
    assert 1 <= len(checks) <= int(elapsed) + 1


def test_metrics_in_production_answer_only_the_addresses_named(stack: Stack) -> None:
    production = stack.settings.model_copy(update={"environment": "production"})
    for host, status in (("127.0.0.1", 200), ("203.0.113.9", 403)):
        with TestClient(create_app(production), client=(host, 40000)) as client:
            response = client.get("/metrics")
        assert response.status_code == status
        if status == 403:
            assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        else:
            assert "movierec_graphql_requests_total" in response.text
    named = production.model_copy(update={"metrics_allow_ips": "10.0.0.0/8, 2001:db8::/32"})
    assert [may_scrape(named, h) for h in ("10.1.2.3", "2001:db8::7", "127.0.0.1", "11.0.0.1")] == [
        True, True, False, False
    ]  # fmt: skip
    assert may_scrape(production, "::ffff:127.0.0.1") and may_scrape(production, "::1")
    assert not may_scrape(production, "testclient")  # not an address
    assert not may_scrape(production.model_copy(update={"metrics_allow_ips": ""}), "127.0.0.1")
    assert may_scrape(stack.settings, "203.0.113.9")  # outside production, anyone


def test_large_responses_are_gzipped(gql: GraphQL) -> None:
    response = gql.client.post(
        "/graphql",
        json={"query": "{ movies(first: 100) { nodes { id title genres } } }"},
        headers={"accept-encoding": "gzip"},
    )
    assert response.headers.get("content-encoding") == "gzip"


def test_graphiql_is_off_outside_development(gql: GraphQL) -> None:
    response = gql.client.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in response.text.lower()


def test_cors_allows_only_configured_origins(stack: Stack) -> None:
    from starlette.testclient import TestClient

    from api.app import create_app

    settings = stack.settings.model_copy(update={"cors_origins": ["https://app.example"]})
    with TestClient(create_app(settings)) as client:
        allowed = client.options(
            "/graphql", headers={"origin": "https://app.example", "access-control-request-method": "POST"}
        )
        refused = client.options(
            "/graphql", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


def test_answers_made_before_graphql_carry_cors_headers(stack: Stack) -> None:
    """A 413 without CORS headers reaches a browser as "Failed to fetch", not as its JSON error."""
    settings = stack.settings.model_copy(
        update={"cors_origins": ["https://app.example"], "max_body_bytes": 100}
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/graphql", json={"query": "{ genres }" + " " * 200}, headers={"origin": "https://app.example"}
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers.get("access-control-allow-origin") == "https://app.example"


def test_no_cors_headers_by_default(gql: GraphQL) -> None:
    response = gql.client.post(
        "/graphql", json={"query": "{ genres }"}, headers={"origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in response.headers


def test_metrics_count_operations_and_time_recommendation_stages(gql: GraphQL, stack: Stack) -> None:
    gql.data("query Recs($u: Int!) { recommendations(userId: $u) { score } }", u=stack.dataset.users[0].id)
    gql.error_code("{ movie(id: 987654) { id } }")
    text = gql.client.get("/metrics").text
    assert 'movierec_graphql_requests_total{operation="recommendations",status="ok"}' in text
    assert 'movierec_graphql_requests_total{operation="movie",status="error"}' in text
    for stage in ("database", "encode", "vector_search"):
        assert f'movierec_recommendation_stage_seconds_count{{stage="{stage}"}}' in text
    assert f"movierec_active_model_version {float(stack.version_id)}" in text
    assert 'movierec_training_runs{status="succeeded"}' in text


def test_metric_labels_are_the_schema_s_own_names(gql: GraphQL) -> None:
    """Names a client makes up fail validation and all count as one label, not one label each."""
    for n in range(30):
        assert gql.error_code(f"{{ madeUp{n}x {{ id }} }}") == "GRAPHQL_VALIDATION_FAILED"
    text = gql.client.get("/metrics").text
    assert "madeUp" not in text
    assert 'movierec_graphql_requests_total{operation="unknown",status="error"}' in text


def test_each_operation_writes_one_access_log_line(gql: GraphQL, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="api.access"):
        gql.error_code("query Missing { movie(id: 987654) { id } }")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 1
    assert lines[0]["operation"] == "movie" and lines[0]["name"] == "Missing"
    assert lines[0]["status"] == "error" and lines[0]["codes"] == ["NOT_FOUND"] and lines[0]["ms"] > 0


def test_responses_carry_security_headers(gql: GraphQL) -> None:
    response = gql.client.post("/graphql", json={"query": "{ genres }"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]


class _CountingStream:
    def __init__(self) -> None:
        self.text, self.flushes = "", 0

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        self.flushes += 1


def test_the_access_log_is_flushed_in_batches_and_on_close() -> None:
    import logging

    from api.metrics import BufferedAccessHandler, log_config

    assert log_config(False)["handlers"]["access"]["class"] == "api.metrics.BufferedAccessHandler"
    stream = _CountingStream()
    handler = BufferedAccessHandler(stream, interval=3600)
    for i in range(100):
        handler.emit(logging.LogRecord("api.access", logging.INFO, __file__, 1, f"line {i}", None, None))
    assert stream.text.count("\n") == 100 and stream.flushes == 0  # written to the buffer, not flushed
    handler.close()
    assert stream.flushes == 1
    quick = BufferedAccessHandler(stream := _CountingStream(), interval=0.05)
    quick.emit(logging.LogRecord("api.access", logging.INFO, __file__, 1, "alone", None, None))
    deadline = time.monotonic() + 5
    while stream.flushes == 0 and time.monotonic() < deadline:  # no more traffic: the ticker flushes
        time.sleep(0.01)
    assert stream.flushes >= 1
    quick.close()


def test_introspection_is_off_outside_development_unless_enabled(gql: GraphQL, stack: Stack) -> None:
    """The test environment behaves as production does here: no schema for strangers to map."""
    for query in ("{ __schema { queryType { name } } }", '{ __type(name: "Movie") { name } }'):
        refused = gql(query)
        assert refused["data"] is None and {e["extensions"]["code"] for e in refused["errors"]} == {
            "GRAPHQL_VALIDATION_FAILED"
        }
    assert gql.data("{ __typename }") == {"__typename": "Query"}
    settings = stack.settings.model_copy(update={"graphql_introspection": True})
    with TestClient(create_app(settings)) as client:
        assert (
            GraphQL(client, None).data("{ __schema { queryType { name } } }")["__schema"]["queryType"]["name"]
            == "Query"
        )


FAN_OUT = "{ users(first: 100) { nodes { ratings(first: 100) { nodes { movie { similar(limit: 100) { score } } } } } } }"


@pytest.mark.parametrize(
    "query",
    [
        FAN_OUT,  # 10,000 Milvus searches in 95 bytes
        "{ " + " ".join(f"a{i}: users(first: 100) {{ nodes {{ id }} }}" for i in range(25)) + " }",
        "query($n: Int!) { movies(first: $n) { nodes { similar { score } } } }",  # up to 100 searches
        "{ movies(first: 11) { nodes { similar(limit: 1) { score } } } }",  # similar under a list of 11
        "fragment F on Movie { similar { movie { title } } } { movies(first: 50) { nodes { ...F } } }",
    ],
)
def test_costly_queries_are_refused_before_they_run(gql: GraphQL, query: str) -> None:
    variables = {"n": 100} if "$n" in query else {}
    refused = gql(query, **variables)
    assert refused["data"] is None  # refused at validation: no resolver ran
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_EXPENSIVE"]


@pytest.mark.parametrize(
    "query",
    [
        "{ recommendations(userId: 1, limit: 20) { score movie { id title genres averageRating } because { id } } }",
        "{ movies(first: 100) { nodes { id title year genres averageRating ratingsCount } } }",
        "{ movies(first: 10) { nodes { id similar(limit: 10) { score movie { title } } } } }",
        "{ user(id: 1) { ratings(first: 100) { nodes { rating movie { title genres } } } } }",
    ],
)
def test_what_a_front_end_asks_is_within_the_budget(gql: GraphQL, query: str) -> None:
    gql.data(query)


def test_dataset_says_what_data_is_held_to_anyone(client: TestClient, stack: Stack) -> None:
    query = "{ dataset { description layout synthetic importedAt users movies ratings } }"
    dataset = GraphQL(client, None).data(query)["dataset"]
    assert dataset["synthetic"] is True and dataset["layout"] == "ml-1m"
    assert (dataset["users"], dataset["movies"], dataset["ratings"]) == (
        len(stack.dataset.users),
        len(stack.dataset.movies),
        len(stack.dataset.ratings),
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", dataset["importedAt"])
