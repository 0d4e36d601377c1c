"""The experiments page in headless Chromium against the app under uvicorn: start an experiment through
the form, read its arms side by side and its chart once impressions are recorded, stop it; axe-core finds
nothing serious on the page, empty or full, at desktop and phone widths."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from api.db import make_engine, make_session_factory
from api.versions.service import running_experiment
from tests.admin.conftest import PASSWORD, other_version, record_results, served, two_versions_stack
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, _check
from tests.api.conftest import Stack
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def experiment_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return two_versions_stack(database_factory, tmp_path_factory.mktemp("experiments-browser"))


@pytest.fixture
def sessions(experiment_stack: Stack) -> Iterator[sessionmaker]:
    engine = make_engine(experiment_stack.settings.resolved_database_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_start_read_and_stop_an_experiment_in_a_real_browser(
    experiment_stack: Stack, sessions: sessionmaker, tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    control, treatment = experiment_stack.version_id, other_version(sessions)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    axe, serious = Axe(), []
    with served(experiment_stack.settings) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{server}/admin/login")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Experiments")
            expect(page.locator("h1")).to_have_text("Experiments")
            expect(page.locator("#no-experiment")).to_be_visible()
            _check(page, axe, "experiments, none yet, at 1280 px", serious)
            page.screenshot(path=str(shots / "experiments-none-1280.png"), full_page=True)

            page.select_option("#start select[name=treatment]", str(treatment))
            expect(page.locator("#start input[name=share]")).to_have_value("0.5")
            page.fill("#start input[name=name]", "bigger model")
            page.click("#start-experiment")
            expect(page.locator("#flash")).to_contain_text(f"% of users get version {treatment}")
            with sessions() as session:
                running = running_experiment(session=session)
                assert running is not None and running.name == "bigger model"
            record_results(sessions, running.id)

            page.reload()
            expect(page.locator("#experiment-state")).to_have_text("running")
            arms = page.locator("#arms")
            expect(arms.locator("thead th").nth(1)).to_have_text("Control")
            expect(arms.locator("thead th").nth(2)).to_have_text("Treatment")
            expect(arms.locator("tr", has_text="Version").locator("td")).to_have_text(
                [f"Version {control}", f"Version {treatment}"]
            )
            expect(arms.locator("tr", has_text="Users").locator("td")).to_have_text(["60", "60"])
            expect(page.locator("#difference")).to_contain_text(
                re.compile(r"treatment ahead by \d+\.\d points")
            )
            expect(page.locator("#sample-ratio")).to_have_text("Sample ratio: passes (p = 1)")
            chart = page.get_by_role("img", name="Positive-feedback rate per day, by arm")
            expect(chart.locator("polyline")).to_have_count(2)
            expect(chart.locator("circle")).to_have_count(4)
            expect(chart.locator("circle title").first).to_contain_text("impressions")
            page.click("#daily summary")
            expect(page.locator("#days tbody tr")).to_have_count(4)
            for width, height in ((1280, 900), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                _check(page, axe, f"experiments, one running, at {width} px", serious)
                page.screenshot(path=str(shots / f"experiments-{width}.png"), full_page=True)

            page.set_viewport_size({"width": 1280, "height": 900})
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("#stop")
            expect(page.locator("#flash")).to_contain_text(f"Experiment {running.id} stopped")
            expect(page.locator("#stop")).to_have_count(0)
            expect(page.locator(f"#experiments tr[data-experiment='{running.id}']")).to_contain_text(
                "stopped by dashboard:admin"
            )
            expect(page.locator("#start")).to_be_visible()  # another may start now
        finally:
            browser.close()
    assert not serious, "\n".join(serious)
