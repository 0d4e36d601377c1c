"""Who a GraphQL request comes from (Starlette's `request.user` and `request.auth`), and the answer
to one refused before it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from starlette.authentication import AuthenticationError, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import Response

from api.errors import Refused


@dataclass(frozen=True)
class Caller(BaseUser):
    """The caller as `request.user`: anonymous, an API key, or a user token's user."""

    kind: Literal["anonymous", "key", "user"]
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None  # a user token's user
    key_id: str = ""  # the API key, or the one that minted the user token

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def identity(self) -> str:
        """Return what its rate limit counts by."""
        return self.key_id if self.kind == "key" else str(self.user_id or "")


ANONYMOUS = Caller("anonymous")


class AccessRefused(Refused, AuthenticationError):
    """A request refused before it runs: 401 UNAUTHENTICATED, 429 RATE_LIMITED or 503 UNAVAILABLE."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        headers = {"retry-after": str(retry_after)} if retry_after else {}
        if status == 401:
            headers["www-authenticate"] = "Bearer"
        super().__init__(status, code, message, headers)


def unauthenticated() -> AccessRefused:
    """Return the refusal of a credential that does not check out."""
    return AccessRefused(401, "UNAUTHENTICATED", "the credential is not a valid API key or user token")


def on_refusal(_conn: HTTPConnection, error: AuthenticationError) -> Response:
    """Return AuthenticationMiddleware's answer to a refused request."""
    return (error if isinstance(error, AccessRefused) else unauthenticated()).response()
