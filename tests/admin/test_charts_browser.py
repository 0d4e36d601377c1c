"""A run's charts, the comparison's overlaid curves and a run's grouped hyperparameters in headless
Chromium at desktop and phone widths: labels people can read, round ticks on both axes, values on hover
and from the keyboard, a table beside each chart, one curve a compared run with its legend; axe-core
finds nothing serious."""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
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


# Each text of a chart: its words and its size on screen (CSS size times the SVG's scale).
TEXTS = """(figure) => {
  const svg = figure.querySelector('svg.chart');
  const scale = svg.getScreenCTM().a;
  return [...svg.querySelectorAll('text')].map((t) => ({
    text: t.textContent, cls: t.getAttribute('class') || '',
    px: parseFloat(getComputedStyle(t).fontSize) * scale,
  }));
}"""


def read_axes(page: Any, selector: str) -> tuple[list[str], list[str], float]:
    """Return a chart's x tick labels, y tick labels and the smallest text size on screen."""
    texts = page.locator(selector).evaluate(TEXTS)
    xs = [t["text"] for t in texts if "tick x" in t["cls"]]
    ys = [t["text"] for t in texts if "tick y" in t["cls"]]
    return xs, ys, min(t["px"] for t in texts)


def assert_round_ticks(labels: list[str], least: int) -> None:
    """At least `least` labels, evenly spaced by 1, 2, 2.5 or 5 times a power of ten."""
    assert len(labels) >= least, labels
    values = [float(v) for v in labels]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, labels
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5), labels
    assert all(abs(v / step - round(v / step)) < 1e-6 for v in values), labels


def test_a_runs_charts_read_with_round_ticks_hover_keyboard_and_a_table(
    browser: Any, server: str, runs: Runs, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    version_id, record = runs.ids[0], runs.histories[0]
    axe, serious = Axe(), []
    for width, height in WIDTHS:
        page = signed_in_page(browser, server, width, height)
        page.goto(f"{server}/admin/runs/{version_id}")
        for chart in ("#chart-loss", "#chart-sampled", "#chart-full"):
            expect(page.locator(f"{chart} svg.chart .series")).not_to_have_count(0)
            xs, ys, smallest = read_axes(page, chart)
            assert smallest >= 12, f"{chart} at {width} px: text of {smallest:.1f} px"
            assert xs == ["1", "2", "3", "4", "5", "6"], (chart, width, xs)  # every epoch, whole numbers
            assert_round_ticks(ys, 3)

        sampled = page.locator("#chart-sampled")
        sampled.locator("svg.chart .point[data-epoch='3']").first.hover()
        tip = sampled.locator(".tip")
        expect(tip).to_be_visible()
        expect(tip).to_contain_text("Epoch 3")
        expect(tip).to_contain_text(f"HR@10: {record[2]['hr@10']:.4f}")
        expect(tip).to_contain_text(f"NDCG@10: {record[2]['ndcg@10']:.4f}")
        page.screenshot(path=str(tmp_path / f"run-hover-{width}.png"), full_page=True)

        loss = page.locator("#chart-loss svg.chart")
        loss.focus()
        expect(page.locator("#chart-loss .tip")).to_contain_text(
            f"Epoch 1Training loss: {record[0]['loss']:.4f}"
        )
        page.keyboard.press("ArrowRight")
        expect(page.locator("#chart-loss .tip")).to_contain_text(
            f"Epoch 2Training loss: {record[1]['loss']:.4f}"
        )
        page.keyboard.press("End")
        expect(page.locator("#chart-loss .tip")).to_contain_text("Epoch 6")
        page.keyboard.press("Tab")
        expect(page.locator("#chart-loss .tip")).to_be_hidden()
        expect(loss).to_have_attribute("aria-label", "Training loss, 1 series per epoch. " + ASKS)

        full = page.locator("#chart-full")
        expect(full.locator(".legend li")).to_have_text(["HR@10", "Recall@20", "NDCG@10"])
        full.locator("summary").click()
        expect(full.locator("table thead th")).to_have_text(["Epoch", "HR@10", "Recall@20", "NDCG@10"])
        expect(full.locator("table tbody tr")).to_have_count(6)
        expect(full.locator("table tbody tr").nth(5)).to_contain_text(f"{record[5]['recall@20']:.4f}")
        _check(page, axe, f"run at {width} px", serious)
        page.close()
    assert not serious, "\n".join(serious)


ASKS = "Focus it and use the arrow keys to read each epoch's values, or open the table below."


def test_the_comparison_overlays_each_runs_curve_with_a_legend_and_values_on_hover(
    browser: Any, server: str, runs: Runs, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    (a, b), (first, second) = runs.ids, runs.histories
    axe, serious = Axe(), []
    for width, height in WIDTHS:
        page = signed_in_page(browser, server, width, height)
        page.goto(f"{server}/admin/compare?v={a}&v={b}")
        chart = page.locator("#chart-curves")
        expect(page.locator("#curves-metric")).to_have_value("ndcg@10")  # the metric training monitors
        expect(chart.locator("svg.chart .series")).to_have_count(2)
        expect(chart.locator("svg.chart .series").nth(0).locator(".point")).to_have_count(6)
        expect(chart.locator("svg.chart .series").nth(1).locator(".point")).to_have_count(4)
        expect(chart.locator(".legend li")).to_have_text([f"Version {a}", f"Version {b}"])
        label = "NDCG@10 (sampled) of the compared runs, 2 series per epoch. " + ASKS
        expect(chart.locator("svg.chart")).to_have_attribute("aria-label", label)
        # not colour alone: each run has its own marker shape, in the chart and in the legend
        series = chart.locator("svg.chart .series")
        shapes = [series.nth(i).locator(".point").first.evaluate("n => n.tagName") for i in (0, 1)]
        assert len(set(shapes)) == 2, shapes
        legend_shapes = chart.locator(".legend .mark").evaluate_all(
            "ms => ms.map((m) => m.lastChild.tagName)"
        )
        assert legend_shapes == shapes
        xs, ys, smallest = read_axes(page, "#chart-curves")
        assert smallest >= 12, f"compare at {width} px: text of {smallest:.1f} px"
        assert xs == ["1", "2", "3", "4", "5", "6"], xs
        assert_round_ticks(ys, 3)

        series.nth(1).locator(".point[data-epoch='2']").hover()
        tip = chart.locator(".tip")
        expect(tip).to_contain_text("Epoch 2")
        expect(tip).to_contain_text(f"Version {a}: {first[1]['ndcg@10']:.4f}")
        expect(tip).to_contain_text(f"Version {b}: {second[1]['ndcg@10']:.4f}")
        page.screenshot(path=str(tmp_path / f"compare-hover-{width}.png"), full_page=True)

        page.select_option("#curves-metric", "loss")
        expect(chart.locator("svg.chart text.title").nth(1)).to_have_text("Training loss")
        series.nth(0).locator(".point[data-epoch='5']").hover()
        expect(tip).to_contain_text(f"Version {a}: {first[4]['loss']:.4f}")
        expect(tip).not_to_contain_text(f"Version {b}")  # it stopped at epoch 4
        _check(page, axe, f"compare at {width} px", serious)
        page.close()
    assert not serious, "\n".join(serious)


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
