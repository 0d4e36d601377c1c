"""GET /: a small page linking the front ends this app serves (the demo, the dashboard, GraphiQL)."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.settings import Settings


def home(settings: Settings) -> Route:
    """Return the route of / with its page, built once: it depends on the settings only."""
    links = []
    if settings.demo_enabled:
        links.append(("/demo/", "Demo", "pick a user, rate movies, watch the recommendations change"))
    links.append(("/admin/", "Dashboard", "retrain, activate versions, inspect the vectors (sign-in)"))
    if settings.environment == "development":
        links.append(("/graphql", "GraphiQL", "write GraphQL queries against the API"))
    items = "\n".join(
        f'<li><a href="{escape(path)}">{escape(name)}</a>: {escape(what)}</li>' for path, name, what in links
    )
    page = (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>movierec</title></head>\n'
        "<body>\n<h1>movierec</h1>\n"
        "<p>Movie recommendations over a GraphQL API at <code>/graphql</code>.</p>\n"
        f"<ul>\n{items}\n</ul>\n</body>\n</html>\n"
    )

    async def endpoint(_request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    return Route("/", endpoint, methods=["GET", "HEAD"])
