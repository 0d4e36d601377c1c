"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so their wiring is
checked by parsing them: services, health-gated start order, secrets, ports, volumes, and the
environment variables the settings object reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service["environment"]
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_the_stack_has_its_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"mysql", "etcd", "minio", "milvus", "migrate", "app"}


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name


@pytest.mark.parametrize("name", ["mysql", "etcd", "minio", "milvus", "app"])
def test_long_running_services_have_healthchecks(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name]["healthcheck"]
    assert check["test"] and check["retries"] >= 3


def test_app_starts_only_when_its_dependencies_are_ready(compose: dict[str, Any]) -> None:
    depends = compose["services"]["app"]["depends_on"]
    assert depends["mysql"]["condition"] == "service_healthy"
    assert depends["milvus"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert compose["services"]["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    milvus = compose["services"]["milvus"]["depends_on"]
    assert {milvus["etcd"]["condition"], milvus["minio"]["condition"]} == {"service_healthy"}


def test_migrate_runs_the_migrations_then_the_import(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["migrate"]["command"])
    assert command.index("movierec db upgrade") < command.index("movierec data import")
    assert compose["services"]["migrate"]["restart"] == "no"


def test_app_environment_matches_the_settings(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["app"])
    fields = {f"MOVIEREC_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    assert env["MOVIEREC_ENVIRONMENT"] == "production"
    assert env["MOVIEREC_DATABASE_URL"].startswith("mysql+pymysql://movierec:")
    assert "@mysql:3306/movierec" in env["MOVIEREC_DATABASE_URL"]
    assert env["MOVIEREC_MILVUS_URI"] == "http://milvus:19530"


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for key in ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
                "MOVIEREC_ADMIN_PASSWORD", "MOVIEREC_SESSION_SECRET", "MOVIEREC_TOKEN_SECRET"):  # fmt: skip
        uses = re.findall(rf"\$\{{{key}([^}}]*)\}}", text)
        assert uses and all(u.startswith(":?") for u in uses), key
    example = (ROOT / ".env.example").read_text()
    for key in (
        "MYSQL_PASSWORD",
        "MOVIEREC_ADMIN_PASSWORD",
        "MOVIEREC_SESSION_SECRET",
        "MOVIEREC_TOKEN_SECRET",
    ):
        assert re.search(rf"^{key}=$", example, re.M), f".env.example lacks {key}"


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", ".", "$")):
                assert source in compose["volumes"], source


def test_dockerfile_is_slim_non_root_and_caches_dependencies() -> None:
    lines = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert lines[0].startswith("FROM python:3.11-slim")
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] != "USER root"
    first_install = next(i for i, line in enumerate(lines) if "pip install" in line)
    copies_code = next(i for i, line in enumerate(lines) if line.startswith("COPY api"))
    assert first_install < copies_code, "dependencies must be installed before the code is copied"
    assert any(line.startswith("HEALTHCHECK") for line in lines)


def test_the_image_runs_production() -> None:
    """Production turns GraphiQL and introspection off, and makes cookies Secure; an image that
    forgot it served the development setup."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^\s+MOVIEREC_ENVIRONMENT=production\s*$", text, re.M)
