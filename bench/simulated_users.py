"""Simulated users of bench/ab_simulation.py, driving the served GraphQL API over HTTP.

Each user asks for its recommendations a few times (sessions, one after the other). It clicks each
movie shown with a chance that grows with its hidden taste for the movie (the generator's own
affinity, ml/movielens/synthetic.py: HiddenTastes), records each click through recordFeedback, and
rates some of the movies it clicked with the stars its taste gives them. Every list served is kept
with what the user did with it, so that the simulation knows which lists an experiment's results
must count as positive.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from api.experiments.results import LIKED
from ml.movielens.synthetic import HiddenTastes

RECOMMEND = (
    "query($u: Int!, $n: Int!) { recommendations(userId: $u, limit: $n) "
    "{ movie { id } impressionId modelVersion } }"
)
CLICK = (
    "mutation($u: Int!, $i: ID!, $m: Int!) "
    "{ recordFeedback(userId: $u, impressionId: $i, movieId: $m, kind: CLICK) { impressionId } }"
)
RATE = (
    "mutation($u: Int!, $m: Int!, $r: Float!) { rateMovie(userId: $u, movieId: $m, rating: $r) { rating } }"
)


@dataclass(frozen=True)
class Behaviour:
    """How simulated users act on what they are shown."""

    sessions: int = 2  # lists each user asks for, one after the other
    limit: int = 10  # movies a list shows
    click_bias: float = -6.0  # logit of clicking a shown movie of average taste match (affinity 0)
    click_slope: float = 1.5  # logit per unit of affinity: the generator's own weight of taste in choices
    rate_share: float = 0.5  # clicks followed by a rating of the movie clicked

    def click_chance(self, affinity: np.ndarray) -> np.ndarray:
        """Return the chance of a click on each movie shown, from the user's affinity for it."""
        return 1.0 / (1.0 + np.exp(-(self.click_bias + self.click_slope * affinity)))


@dataclass
class Shown:
    """One list a user was served, and whether what the user did makes it positive."""

    user_id: int
    version: int
    movies: list[int]
    affinity: float  # the user's mean hidden affinity for the movies shown
    clicked: bool = False
    liked_later: bool = False  # the user rated a movie of it LIKED or more afterwards


@dataclass
class Tally:
    """What the simulated users asked and did, and what went wrong."""

    requests: int = 0  # recommendations asked (and answered)
    shown: list[Shown] = field(default_factory=list)  # answers that carried an impression id
    unrecorded: int = 0  # answers with movies but without an impression id
    clicks: int = 0  # recordFeedback calls answered
    ratings: int = 0  # rateMovie calls answered
    errors: Counter[str] = field(default_factory=Counter)  # "operation CODE" -> count
    error_samples: list[str] = field(default_factory=list)

    def per_version(self) -> dict[int, dict[str, float]]:
        """Return, by the version that served them, the users and lists served, the lists that must
        count as positive, and the mean hidden affinity of the movies shown."""
        counts: dict[int, dict[str, float]] = {}
        for shown in self.shown:
            row = counts.setdefault(
                shown.version, {"users": 0, "impressions": 0, "positive": 0, "affinity": 0.0}
            )
            row["impressions"] += 1
            row["positive"] += shown.clicked or shown.liked_later
            row["affinity"] += shown.affinity
        for version, users in Counter(v for v, _ in {(s.version, s.user_id) for s in self.shown}).items():
            counts[version]["users"] = users
            counts[version]["affinity"] = round(
                counts[version]["affinity"] / counts[version]["impressions"], 3
            )
        return counts


class Refused(Exception):
    """A request answered with an error (HTTP or GraphQL)."""


async def _post(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        codes = sorted({e.get("extensions", {}).get("code", "?") for e in body.get("errors") or []})
        raise Refused(f"HTTP {response.status_code} {','.join(codes)}")
    data: dict[str, Any] = body["data"]
    return data


async def _user(
    client: httpx.AsyncClient,
    user_id: int,
    tastes: HiddenTastes,
    behaviour: Behaviour,
    rng: np.random.Generator,
    tally: Tally,
) -> None:
    """Run one user's sessions; an error ends the step it happened in, not the user."""
    shown_to_user: list[Shown] = []
    for _ in range(behaviour.sessions):
        try:
            data = await _post(client, RECOMMEND, {"u": user_id, "n": behaviour.limit})
        except (Refused, httpx.HTTPError) as error:
            _failed(tally, "recommendations", user_id, error)
            continue
        tally.requests += 1
        items = data["recommendations"]
        if not items:
            continue
        impression = items[0]["impressionId"]
        movies = [int(item["movie"]["id"]) for item in items]
        if impression is None:
            tally.unrecorded += 1
            continue
        movie_array = np.asarray(movies)
        affinity = tastes.affinity(np.full(len(movies), user_id), movie_array)
        shown = Shown(user_id, int(items[0]["modelVersion"]), movies, float(affinity.mean()))
        tally.shown.append(shown)
        shown_to_user.append(shown)
        for movie in movie_array[rng.random(len(movies)) < behaviour.click_chance(affinity)].tolist():
            try:
                await _post(client, CLICK, {"u": user_id, "i": impression, "m": movie})
            except (Refused, httpx.HTTPError) as error:
                _failed(tally, "recordFeedback", user_id, error)
                continue
            tally.clicks += 1
            shown.clicked = True
            if rng.random() >= behaviour.rate_share:
                continue
            stars = int(tastes.stars(rng, np.asarray([user_id]), np.asarray([movie]))[0])
            try:
                await _post(client, RATE, {"u": user_id, "m": movie, "r": float(stars)})
            except (Refused, httpx.HTTPError) as error:
                _failed(tally, "rateMovie", user_id, error)
                continue
            tally.ratings += 1
            if stars >= LIKED:  # every list shown to the user so far that held the movie
                for earlier in shown_to_user:
                    earlier.liked_later = earlier.liked_later or movie in earlier.movies


def _failed(tally: Tally, operation: str, user_id: int, error: Exception) -> None:
    name = str(error) if isinstance(error, Refused) else type(error).__name__
    tally.errors[f"{operation} {name}"] += 1
    if len(tally.error_samples) < 10:
        tally.error_samples.append(f"user {user_id}, {operation}: {error!r}")


def simulate(
    url: str,
    key: str,
    user_ids: list[int],
    tastes: HiddenTastes,
    behaviour: Behaviour,
    *,
    seed: Sequence[int],
    clients: int,
    tally: Tally,
) -> None:
    """Run the users' sessions, `clients` users at a time, adding what happened to tally; each user's
    choices come from a generator of its own (seed, user id), whatever order the users run in."""

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers, limits=limits) as client:
            waiting = iter(user_ids)

            async def worker() -> None:
                for user_id in waiting:
                    rng = np.random.default_rng([*seed, user_id])
                    await _user(client, user_id, tastes, behaviour, rng, tally)

            await asyncio.gather(*(worker() for _ in range(min(clients, len(user_ids)))))

    asyncio.run(main())
