"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by parsing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_mysql_service_is_utf8mb4_with_a_healthcheck_and_a_volume(compose: dict[str, Any]) -> None:
    mysql = compose["services"]["mysql"]
    assert mysql["image"].startswith("mysql:8")
    assert "--character-set-server=utf8mb4" in mysql["command"]
    assert "mysqladmin ping" in " ".join(mysql["healthcheck"]["test"])
    volume = mysql["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    env = compose["services"]["mysql"]["environment"]
    for key in ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"):
        assert env[key].startswith(f"${{{key}:?"), f"{key} must use ${{{key}:?...}}"


def test_database_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    assert compose["services"]["mysql"]["ports"] == ["127.0.0.1:3306:3306"]
