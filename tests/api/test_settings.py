"""Settings: embedded defaults, MOVIEREC_* overrides, a real admin password outside development."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.access.identity import AccessRefused
from api.access.rates import Rates
from api.cli import main
from api.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in (
        "ENVIRONMENT",
        "DATABASE_URL",
        "MILVUS_URI",
        "DATA_DIR",
        "MODEL_DIR",
        "ADMIN_PASSWORD",
        "VAR_DIR",
    ):
        monkeypatch.delenv(f"MOVIEREC_{key}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_embedded_files_under_var() -> None:
    settings = Settings()
    assert settings.resolved_database_url == "sqlite:///var/movierec.db"
    assert settings.resolved_milvus_uri == "var/milvus.db"
    assert settings.resolved_model_dir == Path("var/models")


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATABASE_URL", "mysql+pymysql://u:p@db:3306/movierec")
    monkeypatch.setenv("MOVIEREC_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("MOVIEREC_DATA_DIR", "/data/ml-1m")
    settings = Settings()
    assert settings.resolved_database_url == "mysql+pymysql://u:p@db:3306/movierec"
    assert settings.resolved_milvus_uri == "http://milvus:19530"
    assert settings.data_dir == Path("/data/ml-1m")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MOVIEREC_MILVUS_URI=http://from-dotenv:19530\n")
    assert Settings().resolved_milvus_uri == "http://from-dotenv:19530"


@pytest.mark.parametrize("password", ["", "change-me", "admin"])
def test_production_refuses_a_missing_or_placeholder_password(password: str) -> None:
    with pytest.raises(ValidationError, match="MOVIEREC_ADMIN_PASSWORD"):
        Settings(
            environment="production", admin_password=password, session_secret="s" * 32, token_secret="t" * 32
        )


def test_production_accepts_a_real_password_and_hides_it() -> None:
    settings = Settings(
        environment="production",
        admin_password="k3ep-it-s3cret",
        session_secret="x" * 32,
        token_secret="t" * 32,
    )
    assert "k3ep-it-s3cret" not in repr(settings) and "t" * 32 not in repr(settings)


def test_production_refuses_a_missing_session_secret() -> None:
    with pytest.raises(ValidationError, match="MOVIEREC_SESSION_SECRET"):
        Settings(environment="production", admin_password="k3ep-it-s3cret")


def test_production_refuses_a_missing_or_short_token_secret() -> None:
    for secret in ("", "t" * 31):
        with pytest.raises(ValidationError, match="MOVIEREC_TOKEN_SECRET"):
            Settings(
                environment="production",
                admin_password="k3ep-it-s3cret",
                session_secret="x" * 32,
                token_secret=secret,
            )


def test_a_rate_limit_that_is_not_a_rate_is_refused() -> None:
    with pytest.raises(ValidationError, match="MOVIEREC_RATE_LIMIT_USER"):
        Settings(rate_limit_user="lots")


def test_none_turns_a_rate_limit_off_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable counts as unset (the default limit stays), so the environment says `none`."""
    monkeypatch.setenv("MOVIEREC_RATE_LIMIT_USER", "none")
    monkeypatch.setenv("MOVIEREC_RATE_LIMIT_ADDRESS", "2/minute")
    rates = Rates(Settings())

    async def hits() -> None:
        for _ in range(100):
            await rates.within("user", "7")
        await rates.within("address", "10.0.0.1")
        await rates.within("address", "10.0.0.1")
        with pytest.raises(AccessRefused) as refused:
            await rates.within("address", "10.0.0.1")
        assert refused.value.code == "RATE_LIMITED"

    asyncio.run(hits())


def test_user_token_lifetimes_are_bounded() -> None:
    assert (Settings().token_ttl_s, Settings().token_max_ttl_s) == (900, 3600)
    for wrong, name in (
        ({"token_ttl_s": 7200}, "MOVIEREC_TOKEN_TTL_S"),  # past the maximum
        ({"token_ttl_s": 30}, "MOVIEREC_TOKEN_TTL_S"),
        ({"token_max_ttl_s": 2 * 24 * 3600}, "MOVIEREC_TOKEN_MAX_TTL_S"),
    ):
        with pytest.raises(ValidationError, match=name):
            Settings(**wrong)


def test_metrics_addresses_must_be_addresses_or_networks() -> None:
    assert [str(n) for n in Settings(metrics_allow_ips="10.0.0.0/8, ::1").metrics_networks] == [
        "10.0.0.0/8",
        "::1/128",
    ]
    with pytest.raises(ValidationError, match="MOVIEREC_METRICS_ALLOW_IPS"):
        Settings(metrics_allow_ips="localhost")


def test_the_metrics_directory_is_prometheus_clients_own_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert Settings().metrics_dir is None
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # unprefixed: its workers read it too
    assert Settings().metrics_dir == tmp_path


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATA_DIR", "")
    assert Settings().data_dir is None


def test_command_line_reports_bad_settings_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOVIEREC_ENVIRONMENT", "production")
    assert main(["summary"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MOVIEREC_ADMIN_PASSWORD" in err[0]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("db", "data", "summary"):
        assert command in out
