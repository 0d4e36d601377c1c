"""GraphiQL (development only) from the app itself: its page, and the bundle that `make graphiql` builds
from frontend/graphiql into api/static/graphiql. Nothing comes from a CDN, so it works offline and under
the app's Content-Security-Policy (api.transport.SecurityHeaders)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "static" / "graphiql"
PREFIX = "/graphiql"  # where the bundle is served; the page at /graphql loads it from there

# No inline script or style: the CSP allows neither. The bundle renders GraphiQL into #graphiql and
# sends its requests to /graphql.
PAGE = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>movierec GraphiQL</title>
    <link rel="stylesheet" href="{PREFIX}/graphiql.css">
    <script defer src="{PREFIX}/graphiql.js"></script>
  </head>
  <body>
    <div id="graphiql">Loading…</div>
  </body>
</html>
"""


def assets() -> Mount:
    """Return the route of the bundle's files."""
    return Mount(PREFIX, app=StaticFiles(directory=ASSETS), name="graphiql")
