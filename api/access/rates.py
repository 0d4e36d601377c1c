"""The rate limits (the `limits` library): per API key, per user token's user, and per address for
everyone else and for refused credentials; in Redis when MOVIEREC_REDIS_URL is set, so that every
worker and replica shares the counts, else in-process."""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from api.access.identity import AccessRefused
from api.settings import Settings, is_no_limit

log = logging.getLogger(__name__)
Kind = Literal["key", "user", "address"]


class Rates:
    def __init__(self, settings: Settings) -> None:
        uri = f"async+{settings.redis_url}" if settings.redis_url else "async+memory://"
        options = {"implementation": "redispy"} if settings.redis_url else {}
        self._limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))
        self._rates: dict[str, RateLimitItem | None] = {
            kind: None if is_no_limit(text := getattr(settings, f"rate_limit_{kind}")) else parse(text)
            for kind in ("key", "user", "address")  # Settings.rate_limit_key, _user, _address
        }

    async def within(self, kind: Kind, who: str) -> None:
        """Count a request of `who`; raise AccessRefused (429) when it is over its rate."""
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
