"""GraphiQL in headless Chromium with every other origin blocked: the development server's page, scripts
and styles all come from the app, so it runs a query offline and under the app's CSP. It opens on the
service's example with its variables and the development key, and reads at 390 px as at 1280."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, Request, Route, expect, sync_playwright

from api.graphiql import EXAMPLE_VARIABLES
from tests.admin.conftest import served
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, _check
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def graphiql_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A database with synthetic data and an active model: the example asks for recommendations."""
    return build_stack(database_factory, tmp_path_factory.mktemp("graphiql"), train=True)


@pytest.fixture
def server(graphiql_stack: Stack) -> Iterator[str]:
    """Yield the base URL of the app in development (GraphiQL is served) under uvicorn, in a thread, with
    the stack's key where `movierec up` keeps the key it prints."""
    settings = graphiql_stack.settings.model_copy(update={"environment": "development"})
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    settings.demo_key_file.write_text(graphiql_stack.api_key + "\n", encoding="utf-8")
    try:
        with served(settings) as url:
            yield url
    finally:
        settings.demo_key_file.unlink()


def test_graphiql_opens_on_the_example_with_the_printed_key_at_390_and_1280_px(
    server: str, graphiql_stack: Stack, tmp_path: Path
) -> None:
    """What a developer sees first: a movierec operation, its variables and the key in the headers, ready
    to run; no serious axe finding and no sideways scroll at a phone's width or a desktop's."""
    from axe_playwright_python.sync_playwright import Axe

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    axe, problems = Axe(), []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in ((390, 844), (1280, 800)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{server}/graphql")
                viewport = page.locator("meta[name=viewport]")
                expect(viewport).to_have_attribute("content", "width=device-width, initial-scale=1")
                query = _editor_value(page, ".graphiql-query-editor .CodeMirror")
                assert "query Recommendations($user: Int!, $limit: Int!)" in query
                assert "recommendations(userId: $user, limit: $limit)" in query
                assert json.loads(_editor_value(page, _TOOL_EDITOR)) == EXAMPLE_VARIABLES
                page.get_by_role("button", name="Headers", exact=True).click()
                headers = json.loads(_editor_value(page, _TOOL_EDITOR))
                assert headers == {"Authorization": f"Bearer {graphiql_stack.api_key}"}
                page.locator(".graphiql-execute-button").click()
                response = page.locator(".graphiql-response")
                expect(response).to_contain_text('"recommendations"', timeout=15_000)
                answer = json.loads(response.locator(".CodeMirror").evaluate("n => n.CodeMirror.getValue()"))
                assert "errors" not in answer, answer
                assert len(answer["data"]["recommendations"]) == EXAMPLE_VARIABLES["limit"]
                _check(page, axe, f"GraphiQL at {width} px", problems)
                page.screenshot(path=str(tmp_path / f"graphiql-{width}.png"))
                page.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


_TOOL_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


def _editor_value(page: Page, selector: str) -> Any:
    """Return the text of the GraphiQL (CodeMirror) editor the selector finds, once it is shown."""
    editor = page.locator(selector)
    expect(editor).to_be_visible(timeout=15_000)
    return editor.evaluate("node => node.CodeMirror.getValue()")


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
