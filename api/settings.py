"""The one typed settings object, read from MOVIEREC_* environment variables and an optional .env."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_TOKEN_SECRET = 32  # characters of MOVIEREC_TOKEN_SECRET, required outside development
MIN_SESSION_SECRET = 16  # characters of MOVIEREC_SESSION_SECRET, required outside development
MIN_TOKEN_TTL_S = 60  # shortest user token issueUserToken mints
LONGEST_TOKEN_TTL_S = 24 * 3600  # the most MOVIEREC_TOKEN_MAX_TTL_S may allow
PLACEHOLDER_PASSWORDS = frozenset({"", "change-me", "changeme", "admin", "password", "secret"})


def is_no_limit(rate: str) -> bool:
    """Whether a rate-limit setting turns its limit off: `none` (from the environment, where an empty
    value counts as unset) or an empty string (from code)."""
    return rate.strip().lower() in ("", "none")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOVIEREC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # MOVIEREC_DATA_DIR= (empty) means unset, as compose files pass it
    )

    # What each setting means is README.md's Settings table, which tests/test_readme.py keeps complete.
    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")  # embedded databases, models and caches
    database_url: str = ""  # SQLAlchemy URL; empty: a SQLite file under var_dir
    milvus_uri: str = ""  # empty: a Milvus Lite file under var_dir
    data_dir: Path | None = None
    model_dir: Path | None = None
    admin_password: SecretStr = SecretStr("")
    # Required outside development; development generates them at each start (which signs everybody
    # out), shared by the workers of `movierec serve`.
    session_secret: SecretStr = SecretStr("")
    token_secret: SecretStr = SecretStr("")
    token_ttl_s: int = 900
    token_max_ttl_s: int = 3600
    anonymous_reads: bool = True
    rate_limit_key: str = "5000/second"  # none: no limit, as for the other two
    rate_limit_user: str = "20/second"
    rate_limit_address: str = "50/second"
    redis_url: str = ""  # rate-limit counts shared by every worker and replica
    forwarded_allow_ips: str = ""  # comma-separated; empty: the client address is the connection's
    metrics_allow_ips: str = "127.0.0.1,::1"  # comma-separated, production only; empty: nobody
    graphql_introspection: bool | None = None  # None: in development only
    cors_origins: list[str] = Field(default_factory=list)
    # None: in development only, since its /demo/session route creates users and hands out their tokens
    # to anyone who can reach it.
    demo: bool | None = None
    kept_lists: bool = True  # false: compute every request and store nothing, to measure that path
    impression_queue: int = Field(10_000, ge=0)  # impressions waiting to be written; 0 records none
    impression_retention_days: int = Field(90, ge=1)
    experiment_window_s: int = Field(3600, ge=60)  # how long after an impression its feedback counts
    max_body_bytes: int = Field(65_536, ge=1024)
    body_timeout_s: float = Field(30.0, gt=0)
    import_batch_size: int = Field(20_000, ge=100)
    # prometheus_client's own variable, unprefixed: the workers' client reads it from the environment.
    metrics_dir: Path | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")

    @model_validator(mode="after")
    def _require_password_outside_development(self) -> Settings:
        if self.environment != "development":
            if self.admin_password.get_secret_value().strip().lower() in PLACEHOLDER_PASSWORDS:
                raise ValueError(
                    "MOVIEREC_ADMIN_PASSWORD must be set to a real password outside development "
                    "(only MOVIEREC_ENVIRONMENT=development runs without one)"
                )
            for name, size, enough in (
                ("SESSION", MIN_SESSION_SECRET, self.has_session_secret),
                ("TOKEN", MIN_TOKEN_SECRET, self.has_token_secret),
            ):
                if not enough:
                    raise ValueError(
                        f"MOVIEREC_{name}_SECRET must be set ({size} characters or more) outside development"
                    )
        for name in ("rate_limit_key", "rate_limit_user", "rate_limit_address"):
            value = getattr(self, name)
            try:
                if not is_no_limit(value):
                    limits.parse(value)
            except ValueError:
                raise ValueError(
                    f"MOVIEREC_{name.upper()} is not a rate such as 50/second: {value!r}"
                ) from None
        if not MIN_TOKEN_TTL_S <= self.token_max_ttl_s <= LONGEST_TOKEN_TTL_S:
            raise ValueError(
                f"MOVIEREC_TOKEN_MAX_TTL_S must be {MIN_TOKEN_TTL_S} to {LONGEST_TOKEN_TTL_S} seconds"
            )
        if not MIN_TOKEN_TTL_S <= self.token_ttl_s <= self.token_max_ttl_s:
            raise ValueError(
                f"MOVIEREC_TOKEN_TTL_S must be {MIN_TOKEN_TTL_S} seconds to MOVIEREC_TOKEN_MAX_TTL_S "
                f"({self.token_max_ttl_s})"
            )
        try:
            _ = self.metrics_networks
        except ValueError as error:
            raise ValueError(f"MOVIEREC_METRICS_ALLOW_IPS: {error}") from None
        return self

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Return the networks of MOVIEREC_METRICS_ALLOW_IPS (an address is a network of one)."""
        names = (n.strip() for n in self.metrics_allow_ips.split(","))
        return tuple(ipaddress.ip_network(n, strict=False) for n in names if n)

    @property
    def introspection_enabled(self) -> bool:
        wanted = self.graphql_introspection
        return self.environment == "development" if wanted is None else wanted

    @property
    def demo_enabled(self) -> bool:
        return self.environment == "development" if self.demo is None else self.demo

    @property
    def demo_key_file(self) -> Path:
        """Return where `movierec up` keeps the development API key it prints (GraphiQL opens with it)."""
        return self.var_dir / "demo-api-key"

    @property
    def has_token_secret(self) -> bool:
        return len(self.token_secret.get_secret_value()) >= MIN_TOKEN_SECRET

    @property
    def has_session_secret(self) -> bool:
        return len(self.session_secret.get_secret_value()) >= MIN_SESSION_SECRET

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'movierec.db').as_posix()}"

    @cached_property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.var_dir / "milvus.db")

    @cached_property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.var_dir / "models"
