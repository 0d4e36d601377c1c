"""A run's grouped hyperparameters in headless Chromium at desktop and phone widths; axe-core finds
nothing serious."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from typing import Any, NamedTuple

import pytest

from api.db import make_engine, make_session_factory, utcnow
from api.versions.models import ModelVersion
from ml.config import TrainConfig
from tests.admin.conftest import PASSWORD, served
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, _check
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.browser

WIDTHS = ((1280, 800), (390, 844))


def history(epochs: int, start: float) -> list[dict[str, float]]:
    """Return a run's per-epoch record as training stores it: the loss falls, the metrics rise."""
    return [
        {
            "epoch": e,
            "loss": round(6.3 - 0.21 * e, 4),
            "hr@10": round(start + 0.031 * e, 4),
            "ndcg@10": round(start / 2 + 0.017 * e, 4),
            "recall@10": round(start / 3 + 0.011 * e, 4),
            "recall@20": round(start / 2 + 0.013 * e, 4),
            "full_ndcg@10": round(start / 5 + 0.006 * e, 4),
        }
        for e in range(1, epochs + 1)
    ]


class Runs(NamedTuple):
    stack: Stack
    ids: tuple[int, int]  # six epochs (seed, epochs, output_dim changed), four (learning rate changed)
    histories: tuple[list[dict[str, float]], list[dict[str, float]]]


@pytest.fixture(scope="module")
def runs(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Two finished runs as the worker records them (the pages read only their rows)."""
    stack = build_stack(database_factory, tmp_path_factory.mktemp("charts"), train=False)
    histories = (history(6, 0.41), history(4, 0.37))
    configs = (TrainConfig(epochs=6, seed=3, output_dim=16), TrainConfig(epochs=4, learning_rate=0.01))
    engine = make_engine(stack.settings.resolved_database_url)
    ids = []
    with make_session_factory(engine).begin() as session:
        for config, record in zip(configs, histories, strict=True):
            version = ModelVersion(
                status="succeeded", params=asdict(config), started_by="tests", started_at=utcnow(),
                finished_at=utcnow() + timedelta(minutes=3), metrics={"hr@10": 0.5, "ndcg@10": 0.3},
                progress={"percent": 100.0, "history": record},
            )  # fmt: skip
            session.add(version)
            session.flush()
            ids.append(version.id)
    engine.dispose()
    return Runs(stack, (ids[0], ids[1]), histories)


@pytest.fixture(scope="module")
def server(runs: Runs) -> Iterator[str]:
    with served(runs.stack.settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def signed_in_page(browser: Any, server: str, width: int, height: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{server}/admin/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def test_a_runs_hyperparameters_come_in_groups_with_the_changed_ones_first(
    browser: Any, server: str, runs: Runs
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    axe, serious = Axe(), []
    for width, height in WIDTHS:
        page = signed_in_page(browser, server, width, height)
        page.goto(f"{server}/admin/runs/{runs.ids[0]}")
        config = page.locator("#config")
        expect(config.locator(".hint")).to_have_text(
            "3 differ from the defaults: marked, and first in their group."
        )
        expect(config.locator("caption")).to_have_text(
            ["Model · 1 changed", "Loss", "Training · 2 changed", "Evaluation"]
        )
        model = config.locator("table[data-group='Model'] tr")
        expect(model.nth(0)).to_have_class("differs")
        expect(model.nth(0).locator("th")).to_have_text("output_dim changed")
        expect(model.nth(0).locator("td")).to_have_text("16 (default 256)")
        expect(model.nth(1).locator("th")).to_have_text("embedding_dim")
        expect(model.nth(1)).not_to_have_class("differs")
        training = config.locator("table[data-group='Training'] th")
        expect(training.nth(0)).to_have_text("epochs changed")
        expect(training.nth(1)).to_have_text("seed changed")
        expect(training.nth(2)).to_have_text("batch_size")
        expect(config.locator("table[data-group='Evaluation'] th").last).to_have_text("monitor")
        _check(page, axe, f"run's hyperparameters at {width} px", serious)
        page.close()
    assert not serious, "\n".join(serious)
