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


class SettingsError(ValueError):
    """Settings that cannot run the service."""


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

    environment: Literal["development", "test", "production"] = Field(
        "development", description="development allows a missing admin password; test and production do not"
    )
    var_dir: Path = Field(Path("var"), description="where embedded databases, models and caches live")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means an embedded SQLite file under var_dir"
    )
    milvus_uri: str = Field(
        "", description="Milvus URI; empty means an embedded Milvus Lite file under var_dir"
    )
    data_dir: Path | None = Field(
        None, description="an existing MovieLens 1M directory (users.dat, movies.dat, ratings.dat)"
    )
    model_dir: Path | None = Field(None, description="where trained model versions are written")
    admin_password: SecretStr = Field(SecretStr(""), description="dashboard password")
    session_secret: SecretStr = Field(
        SecretStr(""),
        description="key that signs dashboard session cookies; required outside development "
        "(development generates one per start, shared by the workers of `movierec serve`, which "
        "signs everybody out on restart)",
    )
    token_secret: SecretStr = Field(
        SecretStr(""),
        description="key that signs user tokens; 32+ characters, required outside development "
        "(development generates one per start, shared by the workers of `movierec serve`)",
    )
    token_ttl_s: int = Field(
        900, description="seconds a user token lives unless issueUserToken asks otherwise (the demo's too)"
    )
    token_max_ttl_s: int = Field(
        3600,
        description=f"the longest user token issueUserToken mints (seconds, {LONGEST_TOKEN_TTL_S} at most)",
    )
    anonymous_reads: bool = Field(
        True,
        description="callers without a credential may read the catalogue and get profile recommendations",
    )
    rate_limit_key: str = Field("5000/second", description="requests per API key (none: no limit)")
    rate_limit_user: str = Field("20/second", description="requests per user token's user (none: no limit)")
    rate_limit_address: str = Field(
        "50/second", description="requests per client address without a credential, or with a bad one"
    )
    redis_url: str = Field(
        "", description="redis://host:port/db: rate-limit counts shared by every worker and replica"
    )
    forwarded_allow_ips: str = Field(
        "",
        description="addresses of the reverse proxies whose X-Forwarded-For is believed, comma-separated "
        "(empty: nobody's; the client address is the connection's)",
    )
    metrics_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="client addresses or networks served /metrics in production, comma-separated "
        "(empty: nobody); other environments serve it to everyone",
    )
    graphql_introspection: bool | None = Field(
        None, description="answer __schema and __type queries (default: in development only)"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API (none by default)"
    )
    # Off outside development unless switched on: its /demo/session route creates users and hands out
    # their tokens to anyone who can reach it.
    demo: bool | None = Field(
        None,
        description="serve the demo front end at /demo, whose /demo/session route creates users and "
        "mints their tokens (default: in development only)",
    )
    kept_lists: bool = Field(
        True,
        description="answer from and store users' kept recommendation lists (false: compute every "
        "request and store nothing, to measure the computed path)",
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="largest request body the API accepts")
    body_timeout_s: float = Field(
        30.0, gt=0, description="seconds a client has to send a whole request body once it starts (408 after)"
    )
    import_batch_size: int = Field(20_000, ge=100, description="rows per INSERT batch when importing")
    # prometheus_client's own variable, unprefixed: the workers' client reads it from the environment.
    metrics_dir: Path | None = Field(
        None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="directory where the workers of `movierec serve` write their metrics "
        "(PROMETHEUS_MULTIPROC_DIR; unset: a temporary one for the run)",
    )

    @model_validator(mode="after")
    def _require_password_outside_development(self) -> Settings:
        if self.environment != "development" and (
            self.admin_password.get_secret_value().strip().lower() in PLACEHOLDER_PASSWORDS
        ):
            raise SettingsError(
                "MOVIEREC_ADMIN_PASSWORD must be set to a real password outside development "
                "(only MOVIEREC_ENVIRONMENT=development runs without one)"
            )
        if self.environment != "development" and not self.has_session_secret:
            raise SettingsError(
                f"MOVIEREC_SESSION_SECRET must be set ({MIN_SESSION_SECRET} characters or more) "
                "outside development"
            )
        if self.environment != "development" and not self.has_token_secret:
            raise SettingsError(
                f"MOVIEREC_TOKEN_SECRET must be set ({MIN_TOKEN_SECRET} characters or more) "
                "outside development"
            )
        for name in ("rate_limit_key", "rate_limit_user", "rate_limit_address"):
            value = getattr(self, name)
            try:
                if not is_no_limit(value):
                    limits.parse(value)
            except ValueError:
                raise SettingsError(
                    f"MOVIEREC_{name.upper()} is not a rate such as 50/second: {value!r}"
                ) from None
        if not MIN_TOKEN_TTL_S <= self.token_max_ttl_s <= LONGEST_TOKEN_TTL_S:
            raise SettingsError(
                f"MOVIEREC_TOKEN_MAX_TTL_S must be {MIN_TOKEN_TTL_S} to {LONGEST_TOKEN_TTL_S} seconds"
            )
        if not MIN_TOKEN_TTL_S <= self.token_ttl_s <= self.token_max_ttl_s:
            raise SettingsError(
                f"MOVIEREC_TOKEN_TTL_S must be {MIN_TOKEN_TTL_S} seconds to MOVIEREC_TOKEN_MAX_TTL_S "
                f"({self.token_max_ttl_s})"
            )
        try:
            _ = self.metrics_networks
        except ValueError as error:
            raise SettingsError(f"MOVIEREC_METRICS_ALLOW_IPS: {error}") from None
        return self

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Return the networks of MOVIEREC_METRICS_ALLOW_IPS (an address is a network of one)."""
        names = (n.strip() for n in self.metrics_allow_ips.split(","))
        return tuple(ipaddress.ip_network(n, strict=False) for n in names if n)

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is None:
            return self.environment == "development"
        return self.graphql_introspection

    @property
    def demo_enabled(self) -> bool:
        """Return whether /demo is served: as MOVIEREC_DEMO says, else in development only."""
        return self.environment == "development" if self.demo is None else self.demo

    @property
    def has_token_secret(self) -> bool:
        return len(self.token_secret.get_secret_value()) >= MIN_TOKEN_SECRET

    @property
    def has_session_secret(self) -> bool:
        """Return whether MOVIEREC_SESSION_SECRET is long enough to sign sessions (else development
        generates one)."""
        return len(self.session_secret.get_secret_value()) >= MIN_SESSION_SECRET

    @cached_property
    def resolved_database_url(self) -> str:
        """Return the database URL, defaulting to SQLite under var_dir."""
        return self.database_url or f"sqlite:///{(self.var_dir / 'movierec.db').as_posix()}"

    @cached_property
    def resolved_milvus_uri(self) -> str:
        """Return the Milvus URI, defaulting to a Milvus Lite file under var_dir."""
        return self.milvus_uri or str(self.var_dir / "milvus.db")

    @cached_property
    def resolved_model_dir(self) -> Path:
        """Return the directory of trained model versions."""
        return self.model_dir or self.var_dir / "models"

    @property
    def cache_dir(self) -> Path:
        """Return the directory for downloads."""
        return self.var_dir / "cache"
