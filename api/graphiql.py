"""GraphiQL (development only) from the app itself: its page, and the bundle that `make graphiql` builds
from frontend/graphiql into api/static/graphiql. Nothing comes from a CDN, so it works offline and under
the app's Content-Security-Policy (api.transport.SecurityHeaders)."""

from __future__ import annotations

import ipaddress
import json
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api.settings import Settings

ASSETS = Path(__file__).resolve().parent / "static" / "graphiql"
PREFIX = "/graphiql"  # where the bundle is served; the page at /graphql loads it from there

# What GraphiQL opens on: the service's main question, with its variables.
EXAMPLE_QUERY = """\
# movierec: a user's recommendations, and
# the movies each one comes from.
# Run it: ▶ or Ctrl-Enter. Change the user
# under Variables; Docs lists every field.
# Recommendations need an API key (Headers):
# `movierec up` prints one.
query Recommendations($user: Int!, $limit: Int!) {
  recommendations(userId: $user, limit: $limit) {
    score
    source
    movie {
      id title year genres
      averageRating ratingsCount
    }
    because { title }
  }
}
"""
EXAMPLE_VARIABLES = {"user": 1, "limit": 5}

# No inline script or style: the CSP allows neither. The bundle renders GraphiQL into #graphiql, opened
# on the data-* values, and sends its requests to /graphql.
PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>movierec GraphiQL</title>
    <link rel="stylesheet" href="{prefix}/graphiql.css">
    <script defer src="{prefix}/graphiql.js"></script>
  </head>
  <body>
    <div id="graphiql" data-query="{query}" data-variables="{variables}"
         data-headers="{headers}">Loading…</div>
  </body>
</html>
"""


class GraphiQLPage:
    """GraphiQL's page: opened on the example, and, for a browser on this machine, with the development
    API key (the one `movierec up` prints, read once at start) in its headers."""

    def __init__(self, settings: Settings) -> None:
        key_file = settings.demo_key_file
        key = key_file.read_text(encoding="utf-8").strip() if key_file.is_file() else ""
        self.anywhere = render("")
        self.here = render(json.dumps({"Authorization": f"Bearer {key}"}) if key else "")

    def html(self, request: Request) -> str:
        """Return the page for this request: the key only to a client on the loopback address, so that
        a development server listening on a network does not hand its key to the network."""
        return self.here if request.client is not None and is_loopback(request.client.host) else self.anywhere


def render(headers: str) -> str:
    """Return the page opened on the example, with these headers (JSON text, or empty)."""
    variables = json.dumps(EXAMPLE_VARIABLES, indent=2)
    return PAGE.format(
        prefix=PREFIX, query=escape(EXAMPLE_QUERY), variables=escape(variables), headers=escape(headers)
    )


def is_loopback(host: str) -> bool:
    """Return whether a client address is this machine's loopback (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, e.g. Starlette's TestClient's "testclient"
        return False


def assets() -> Mount:
    """Return the route of the bundle's files."""
    return Mount(PREFIX, app=StaticFiles(directory=ASSETS), name="graphiql")
