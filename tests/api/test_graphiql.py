"""GraphiQL's page: it opens on an example that fits the schema, and gives the development API key to a
browser on the server's machine only (tests/admin/test_graphiql_browser.py runs the page in Chromium)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from graphql import get_operation_ast, parse, validate
from graphql.execution.values import get_variable_values
from starlette.testclient import TestClient

from api.app import create_app
from api.graphiql import EXAMPLE_QUERY, EXAMPLE_VARIABLES
from api.graphql.schema import build_schema
from tests.api.conftest import Stack


def test_the_example_and_its_variables_fit_the_schema() -> None:
    schema = build_schema(introspection=True)._schema
    document = parse(EXAMPLE_QUERY)
    assert validate(schema, document) == []
    operation = get_operation_ast(document)
    assert operation is not None and operation.name is not None
    coerced = get_variable_values(schema, operation.variable_definitions or (), EXAMPLE_VARIABLES)
    assert not isinstance(coerced, list), coerced  # a list holds the variables' errors


class Opening(HTMLParser):
    """Reads what the page tells GraphiQL to open on (the data-* of #graphiql) and its viewport."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str | None] = {}
        self.viewport: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id") == "graphiql":
            self.data = {k.removeprefix("data-"): v for k, v in attrs if k.startswith("data-")}
        if tag == "meta" and found.get("name") == "viewport":
            self.viewport = found.get("content")


def opening(client: TestClient) -> Opening:
    response = client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    parsed = Opening()
    parsed.feed(response.text)
    return parsed


def test_the_page_gives_the_printed_key_to_this_machine_only(stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings.model_copy(update={"environment": "development", "var_dir": tmp_path})
    settings.demo_key_file.write_text(stack.api_key + "\n", encoding="utf-8")  # as `movierec up` keeps it
    app = create_app(settings)
    for host, headers in (
        ("127.0.0.1", {"Authorization": f"Bearer {stack.api_key}"}),
        ("::1", {"Authorization": f"Bearer {stack.api_key}"}),
        ("192.0.2.7", None),  # a development server listening on a network keeps its key
    ):
        with TestClient(app, client=(host, 40000)) as client:
            page = opening(client)
        assert page.viewport == "width=device-width, initial-scale=1"
        assert page.data["query"] == EXAMPLE_QUERY
        assert json.loads(page.data["variables"] or "") == EXAMPLE_VARIABLES
        assert (json.loads(page.data["headers"]) if page.data["headers"] else None) == headers, host


def test_without_a_printed_key_the_page_opens_on_the_example_without_headers(
    stack: Stack, tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(update={"environment": "development", "var_dir": tmp_path})
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        page = opening(client)
    assert page.data["query"] == EXAMPLE_QUERY and page.data["headers"] == ""
