"""Who is calling, and whether they are within their rate: run once per GraphQL request, before it
executes (api.app.GraphQLApp).

A caller sends `Authorization: Bearer <credential>`: an API key (`mrk_…`) or a user token. No
header makes an anonymous caller; a credential that does not check out is refused with 401, never
downgraded to anonymous. Rate limits (the `limits` library) count per API key, per user token's
user, and per address for everyone else and for refused credentials; in Redis when
MOVIEREC_REDIS_URL is set, so that every worker and replica shares the counts, else in-process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from cachetools import TTLCache
from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy.orm import Session

from api.access.keys import KeyGrant, check_key, split_key
from api.access.tokens import user_of_token
from api.settings import Settings

log = logging.getLogger(__name__)
KEY_CACHE_S = 10.0  # a revoked key stops working within this on every worker


@dataclass(frozen=True)
class Caller:
    kind: Literal["anonymous", "key", "user"]
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: int | None = None  # a user token's user
    name: str = ""  # the key id, for logs


ANONYMOUS = Caller("anonymous")


class AccessRefused(Exception):
    """A request refused before it runs: 401 UNAUTHENTICATED or 429 RATE_LIMITED."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


Run = Callable[[Callable[[Session], KeyGrant | None]], Awaitable[KeyGrant | None]]


class Gate:
    def __init__(self, settings: Settings, token_secret: str, run_write: Run) -> None:
        self.token_secret = token_secret
        self._run_write = run_write  # a key check records the key's use
        self._keys: TTLCache[str, KeyGrant | None] = TTLCache(4096, KEY_CACHE_S)
        uri = f"async+{settings.redis_url}" if settings.redis_url else "async+memory://"
        options = {"implementation": "redispy"} if settings.redis_url else {}
        self._limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))
        self._rates: dict[str, RateLimitItem | None] = {
            "key": _rate(settings.rate_limit_key),
            "user": _rate(settings.rate_limit_user),
            "address": _rate(settings.rate_limit_address),
        }

    async def admit(self, authorization: str | None, address: str) -> Caller:
        """Return the caller, or raise AccessRefused."""
        if authorization is None:
            await self._within("address", address)
            return ANONYMOUS
        scheme, _, credential = authorization.partition(" ")
        caller = None
        if scheme.lower() == "bearer" and credential:
            caller = await self._identify(credential.strip())
        if caller is None:
            await self._within("address", address)
            raise AccessRefused(401, "UNAUTHENTICATED", "the credential is not a valid API key or user token")
        await self._within(caller.kind, caller.name)
        return caller

    async def _identify(self, credential: str) -> Caller | None:
        parts = split_key(credential)
        if parts is None:
            user_id = user_of_token(self.token_secret, credential)
            return None if user_id is None else Caller("user", user_id=user_id, name=str(user_id))
        cache_key = hashlib.sha256(credential.encode()).hexdigest()
        try:
            grant = self._keys[cache_key]
        except KeyError:
            grant = await self._run_write(lambda s: check_key(session=s, key_id=parts[0], secret=parts[1]))
            self._keys[cache_key] = grant
        return None if grant is None else Caller("key", grant.scopes, name=grant.key_id)

    async def _within(self, kind: str, who: str) -> None:
        rate = self._rates[kind]
        if rate is None:
            return
        try:
            if await self._limiter.hit(rate, kind, who):
                return
            reset, _ = await self._limiter.get_window_stats(rate, kind, who)
        except Exception as error:  # the limit's store (Redis) is down: serve rather than refuse all
            log.warning("rate limit not checked: %s", error)
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise AccessRefused(429, "RATE_LIMITED", f"too many requests; retry in {wait} s", retry_after=wait)


def _rate(text: str) -> RateLimitItem | None:
    return parse(text) if text.strip() else None
