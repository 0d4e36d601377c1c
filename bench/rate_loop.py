"""The rate-then-recommend scenario of bench/serve.py: what a front end does after every click on a star.

Each of --connections clients takes a user of its own, acts as that user with a user token (as a
browser front end does; issued with the benchmark's API key), and loops: rate the first movie of the
user's current recommendations (1 to 5 stars), then ask for the recommendations again. The answer
must no longer hold the movie just rated (rated movies are left out): an answer computed before
the rating, or kept from before it, would. Every answer is checked.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RECS = "query($u: Int!) { recommendations(userId: $u, limit: 10) { movie { id } } }"
ISSUE = "mutation($u: Int!) { issueUserToken(userId: $u) { token } }"
RATE = (
    "mutation($u: Int!, $m: Int!, $r: Float!) { rateMovie(userId: $u, movieId: $m, rating: $r) { rating } }"
)


@dataclass
class Loop:
    rate_ms: list[float] = field(default_factory=list)
    recommend_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rate_limited: int = 0  # errors that were 429 RATE_LIMITED: the stack's limits, not the service
    stale: int = 0  # answers that still held the movie just rated


class Refused(Exception):
    """A request answered with an error: the client stops, and its error is counted."""

    def __init__(self, status: int, codes: list[str]) -> None:
        super().__init__(f"HTTP {status} {','.join(codes)}")
        self.rate_limited = status == 429 or "RATE_LIMITED" in codes


async def _post(client: httpx.AsyncClient, query: str, variables: dict, times: list[float]) -> dict:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    times.append((time.perf_counter() - started) * 1000)
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        codes = sorted({e.get("extensions", {}).get("code", "?") for e in body.get("errors") or []})
        raise Refused(response.status_code, codes)
    data: dict = body["data"]
    return data


async def _client(url: str, key: str, user: int, deadline: float, loop: Loop, seed: int) -> None:
    rng = random.Random(seed)
    step = "issueUserToken"
    try:
        async with httpx.AsyncClient(
            base_url=url, timeout=30, headers={"authorization": f"Bearer {key}"}
        ) as client:
            issued = await _post(client, ISSUE, {"u": user}, [])
            client.headers["authorization"] = f"Bearer {issued['issueUserToken']['token']}"
            step = "recommendations"
            data = await _post(client, RECS, {"u": user}, [])
            while time.monotonic() < deadline:
                rated = data["recommendations"][0]["movie"]["id"]
                step = "rateMovie"
                await _post(client, RATE, {"u": user, "m": rated, "r": rng.randint(1, 5)}, loop.rate_ms)
                step = "recommendations"
                data = await _post(client, RECS, {"u": user}, loop.recommend_ms)
                if rated in [r["movie"]["id"] for r in data["recommendations"]]:
                    loop.stale += 1
    except (Refused, httpx.HTTPError, IndexError) as error:
        loop.errors.append(f"user {user}, {step}: {error!r}")
        loop.rate_limited += isinstance(error, Refused) and error.rate_limited


def run(url: str, key: str, users: list[int], duration: float) -> dict[str, Any]:
    """Run one client per user for `duration` seconds (key: an API key with the tokens:issue scope);
    return req/s and latencies of both requests."""
    loop = Loop()
    deadline = time.monotonic() + duration

    async def main() -> None:
        await asyncio.gather(*(_client(url, key, u, deadline, loop, i) for i, u in enumerate(users)))

    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 2) if len(values) > 1 else 0.0

    return {
        "clients": len(users),
        "pairs": len(loop.recommend_ms),
        "req_per_s": round((len(loop.rate_ms) + len(loop.recommend_ms)) / elapsed, 1),
        "rate_p50_ms": pct(loop.rate_ms, 50),
        "rate_p99_ms": pct(loop.rate_ms, 99),
        "recommend_p50_ms": pct(loop.recommend_ms, 50),
        "recommend_p99_ms": pct(loop.recommend_ms, 99),
        "errors": len(loop.errors),
        "rate_limited": loop.rate_limited,
        "error_samples": loop.errors[:5],
        "stale_answers": loop.stale,
        "checked_answers": len(loop.recommend_ms),
    }
