"""GraphiQL in headless Chromium with every other origin blocked: the development server's page, scripts
and styles all come from the app, so it runs a query offline and under the app's CSP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Request, Route, expect, sync_playwright

from tests.admin.conftest import served
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def graphiql_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A database with synthetic data and no model: `{ genres }` reads the database only."""
    return build_stack(database_factory, tmp_path_factory.mktemp("graphiql"), train=False)


@pytest.fixture
def server(graphiql_stack: Stack) -> Iterator[str]:
    """Yield the base URL of the app in development (GraphiQL is served) under uvicorn, in a thread."""
    settings = graphiql_stack.settings.model_copy(update={"environment": "development"})
    with served(settings) as url:
        yield url


def test_graphiql_runs_a_query_with_other_origins_blocked(
    server: str, graphiql_stack: Stack, tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")

    origin, key = urlsplit(server).netloc, graphiql_stack.api_key
    elsewhere: list[str] = []  # requests to any other host, aborted
    refused: list[str] = []  # what the Content-Security-Policy blocked
    authorizations: list[str | None] = []  # the Authorization header of each GraphQL request

    def same_origin_only(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    def on_request(request: Request) -> None:
        if request.method == "POST" and urlsplit(request.url).path == "/graphql":
            authorizations.append(request.headers.get("authorization"))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route("**/*", same_origin_only)
        page.on("console", on_console)
        page.on("request", on_request)
        try:
            response = page.goto(f"{server}/graphql")  # a navigation: Accept: text/html
            assert response is not None and response.ok
            assert "text/html" in response.headers["content-type"]
            assert "default-src 'self'" in response.headers["content-security-policy"]
            query_editor = page.locator(".graphiql-query-editor .CodeMirror")
            expect(query_editor).to_be_visible(timeout=15_000)  # React rendered GraphiQL

            # A credential in the headers tab, typed as a user would.
            page.get_by_role("button", name="Headers", exact=True).click()
            _type_into(
                page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"),
                f'{{"Authorization": "Bearer {key}"}}',
            )
            _type_into(query_editor, "{ genres }")
            page.locator(".graphiql-execute-button").click()

            expect(page.locator(".graphiql-response")).to_contain_text('"Drama"')
            page.screenshot(path=str(tmp_path / "graphiql.png"), full_page=True)
        finally:
            browser.close()
    assert authorizations[-1] == f"Bearer {key}", authorizations  # the query's, after the schema's
    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
    assert refused == [], refused


def _type_into(editor: Locator, text: str) -> None:
    """Replace the text of a GraphiQL (CodeMirror) editor by typing, and check what it holds after."""
    editor.click()
    editor.page.keyboard.press("Control+A")
    editor.page.keyboard.type(text)
    assert editor.evaluate("node => node.CodeMirror.getValue()") == text
