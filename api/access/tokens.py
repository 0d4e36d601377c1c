"""User tokens: short-lived JWTs (HS256) of one user, naming the API key that minted them (one with
`tokens:issue`, for a browser front end), so that revoking the key ends its tokens too."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from api.access.keys import is_key_id

AUDIENCE = "movierec:user"
# The minter of the demo's tokens (api.demo.routes): not hex, so never a key id. They are good while
# the demo is served.
DEMO_MINTER = "demo"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    key_id: str  # the API key that minted the token, or DEMO_MINTER


def issue_user_token(secret: str, user_id: int, key_id: str, ttl_s: int) -> tuple[str, int]:
    """Return a token for the user, minted by the key, and when it expires (Unix seconds)."""
    now = int(time.time())
    expires = now + ttl_s
    claims = {"sub": str(user_id), "key": key_id, "aud": AUDIENCE, "iat": now, "exp": expires}
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def read_user_token(secret: str, token: str) -> TokenClaims | None:
    """Return the claims of an unexpired token this secret signed and that names its minter, else None."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud", "key"]},
        )
        user_id, key_id = int(claims["sub"]), claims["key"]
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None
    if not isinstance(key_id, str) or not (key_id == DEMO_MINTER or is_key_id(key_id)):
        return None
    return TokenClaims(user_id, key_id)
