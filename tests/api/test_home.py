"""GET /: a page linking the front ends the settings switch on, each of which answers."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from api.app import create_app
from api.settings import Settings


def _links(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)">', html)


def test_home_links_the_dashboard_outside_development(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert _links(response.text) == ["/admin/"]
    assert client.get("/admin/", follow_redirects=True).status_code == 200


def test_home_links_the_demo_dashboard_and_graphiql_in_development(tmp_path: Path) -> None:
    settings = Settings(
        environment="development", var_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db"
    )
    client = TestClient(create_app(settings))  # no lifespan: the page and the demo's files need no database
    response = client.get("/")
    assert response.status_code == 200
    assert _links(response.text) == ["/demo/", "/admin/", "/graphql"]
    assert client.get("/demo/").status_code == 200
    assert client.post("/").status_code == 405
