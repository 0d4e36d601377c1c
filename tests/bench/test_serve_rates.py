"""The rate limits bench/serve.py gives the API it serves reach the API's settings and let its load through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.access.identity import AccessRefused
from api.access.rates import Rates
from api.settings import Settings
from bench.serve import LOAD_RATES

REQUESTS = 200  # ten times the default per-user rate, asked within one second


async def refusals(rates: Rates) -> int:
    """Return how many of REQUESTS requests of one user, one key and one address were refused."""
    refused = 0
    for kind, who in (("user", "7"), ("key", "bench"), ("address", "127.0.0.1")):
        for _ in range(REQUESTS):
            try:
                await rates.within(kind, who)  # type: ignore[arg-type]
            except AccessRefused:
                refused += 1
    return refused


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in LOAD_RATES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_served_stack_takes_the_benchmarks_rates(environment: pytest.MonkeyPatch) -> None:
    for name, value in LOAD_RATES.items():
        environment.setenv(name, value)
    settings = Settings()
    assert (settings.rate_limit_key, settings.rate_limit_user, settings.rate_limit_address) == tuple(
        LOAD_RATES.values()
    )
    assert asyncio.run(refusals(Rates(settings))) == 0


def test_without_them_the_default_rates_refuse_that_load(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("MOVIEREC_RATE_LIMIT_USER", "")  # empty: ignored, the default stays
    assert asyncio.run(refusals(Rates(Settings()))) > 0
