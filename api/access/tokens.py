"""User tokens: short-lived JWTs (PyJWT, HS256) bound to one user, minted by a back end that holds
an API key with the `tokens:issue` scope, for a browser front end to send as that user."""

from __future__ import annotations

import time

import jwt

AUDIENCE = "movierec:user"
MAX_TTL_S = 24 * 3600
DEFAULT_TTL_S = 3600


def issue_user_token(secret: str, user_id: int, ttl_s: int = DEFAULT_TTL_S) -> tuple[str, int]:
    """Return a token for the user and when it expires (Unix seconds)."""
    now = int(time.time())
    expires = now + ttl_s
    claims = {"sub": str(user_id), "aud": AUDIENCE, "iat": now, "exp": expires}
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def user_of_token(secret: str, token: str) -> int | None:
    """Return the user a valid, unexpired token was issued for; None for any other token."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "sub", "aud"]}
        )
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None
