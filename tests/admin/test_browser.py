"""The dashboard in headless Chromium (Debian's package, driven by Playwright) against the app under
uvicorn: sign in, retrain one epoch in the real worker, watch it finish, activate it, see the collection change."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.admin.conftest import PASSWORD, TINY_FORM, served
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

CHROMIUM = os.environ.get("MOVIEREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TRAINING_TIMEOUT_MS = 240_000  # one tiny epoch takes seconds; a busy CI machine gets slack


pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: the test activates a new version, which other tests must not see."""
    return build_stack(database_factory, tmp_path_factory.mktemp("browser"), train=True)


@pytest.fixture
def server(browser_stack: Stack) -> Iterator[str]:
    """Yield the base URL of the app served by uvicorn on a free local port, in a thread."""
    with served(browser_stack.settings) as url:
        yield url


def test_retrain_watch_activate_in_a_real_browser(server: str, browser_stack: Stack, tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{server}/admin/")
            expect(page).to_have_url(re.compile(r"/admin/login\?next="))
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Overview")
            old = f"movies_v{browser_stack.version_id}"
            expect(page.locator("#collection-name")).to_have_text(old)
            expect(page.locator("#collection-dim")).to_have_text("32")

            # A smaller vector size, so the new collection's dimension differs from the active one's.
            for name, value in {**TINY_FORM, "output_dim": "16"}.items():
                page.fill(f"#retrain input[name={name}]", value)
            page.click("#start-training")
            expect(page).to_have_url(re.compile(r"/admin/runs/\d+$"))
            version_id = int(page.url.rsplit("/", 1)[1])
            expect(page.locator("#run-status")).to_have_text("succeeded", timeout=TRAINING_TIMEOUT_MS)
            expect(page.locator("#run-detail")).to_have_text("100%")
            expect(page.locator("#run-metrics")).to_contain_text("HR@10")
            expect(page.locator("#chart-loss svg.chart .point")).to_have_count(1)
            # validation HR@10 and NDCG@10 sampled on one axis; HR@10, Recall@20, NDCG@10 full on another
            expect(page.locator("#chart-sampled polyline")).to_have_count(2)
            expect(page.locator("#chart-full polyline")).to_have_count(3)
            expect(page.locator("#chart-full .legend")).to_contain_text("Recall@20")
            page.locator("#chart-sampled svg.chart .point").first.hover()
            expect(page.locator("#chart-sampled .tip")).to_contain_text("Epoch 1 (kept)HR@10: 0.")
            expect(page.locator("#best-epoch")).to_contain_text("epoch 1, the best validation ndcg@10")
            page.screenshot(path=str(shots / "run.png"), full_page=True)

            page.click("#compare-active")
            expect(page.locator("#compare th").nth(2)).to_contain_text(f"B: Version {version_id}")
            expect(page.locator("#compare-params tr.differs", has_text="output_dim")).to_have_count(1)
            page.screenshot(path=str(shots / "compare.png"), full_page=True)

            page.click("text=Runs")
            row = page.locator(f"#runs tr[data-version='{version_id}']")
            expect(row).to_contain_text("succeeded")
            expect(row).to_contain_text("HR@10")
            expect(row).to_contain_text("dashboard:admin")
            asked: list[str] = []
            page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
            row.locator("button", has_text="Activate").click()  # dismissed: nothing switches
            expect(page.locator("h1")).to_have_text("Training runs")
            assert asked and asked[0].startswith(f"Activate version {version_id}?"), asked
            page.once("dialog", lambda dialog: dialog.accept())
            row.locator("button", has_text="Activate").click()

            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("#flash")).to_contain_text(f"Version {version_id} is active.")
            expect(page.locator("#collection-name")).to_have_text(f"movies_v{version_id}")
            expect(page.locator("#collection-dim")).to_have_text("16")
            expect(page.locator("#collection-rows")).to_have_text(str(len(browser_stack.dataset.movies)))
            expect(page.locator("#active-model")).to_contain_text(f"Version {version_id}")
            page.screenshot(path=str(shots / "overview.png"), full_page=True)

            assert _kept_lists_appear(browser_stack, version_id), "activation kept no recommendation lists"
            deadline = time.monotonic() + 60  # the last chunks may still be written: the card says so
            while page.reload() and page.locator("#kept-status").inner_text() == "running":
                assert time.monotonic() < deadline, "the kept-lists job never finished"
                time.sleep(0.5)
            expect(page.locator("#kept-status")).to_have_text("succeeded")
            page.click("text=Activation history")
            expect(page.locator("#activations tbody tr").first).to_contain_text("dashboard:admin")

            page.goto(f"{server}/admin/playground?user_id=1&movie_id=1")
            expect(page.locator("#recommended li")).to_have_count(10)
            page.screenshot(path=str(shots / "playground.png"), full_page=True)
        finally:
            browser.close()


PAGES = [
    ("login", "/admin/login"),
    ("overview", "/admin/"),
    ("runs", "/admin/runs"),
    ("run", "/admin/runs/{version}"),
    ("compare", "/admin/compare?v={version}&v={version}"),
    ("activations", "/admin/activations"),
    ("playground", "/admin/playground?user_id={user}&movie_id={movie}&q=the"),
    ("keys", "/admin/keys"),
    ("not-found", "/admin/runs/987654"),
]


def test_every_page_reads_at_1280_and_390_px_and_axe_finds_nothing_serious(
    server: str, browser_stack: Stack, tmp_path: Path
) -> None:
    """axe-core (the engine of Lighthouse's and Deque's audits) on every dashboard page, at desktop
    and phone widths; no page may scroll sideways on a phone. Screenshots go to the test's directory."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    values = {
        "version": browser_stack.version_id,
        "user": browser_stack.dataset.users[0].id,
        "movie": browser_stack.dataset.movies[0].id,
    }
    axe, serious = Axe(), []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in ((1280, 900), (390, 844)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{server}/admin/login")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                for name, path in PAGES:
                    if name == "login":
                        continue
                    page.goto(server + path.format(**values))
                    _check(page, axe, f"{name} at {width} px", serious)
                    page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
                page.close()
                signed_out = browser.new_page(viewport={"width": width, "height": height})
                signed_out.goto(f"{server}/admin/login")
                _check(signed_out, axe, f"login at {width} px", serious)
                signed_out.screenshot(path=str(shots / f"login-{width}.png"), full_page=True)
                signed_out.close()
        finally:
            browser.close()
    assert not serious, "\n".join(serious)


# The elements that reach past the window (outside a box that scrolls on its own) and hold no element
# that does: what makes a page scroll sideways.
WIDEST = """[...document.body.querySelectorAll('*')]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((e) => !e.parentElement.closest('.scroll'))
  .filter((e) => ![...e.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 1))
  .slice(0, 3).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))"""


def _check(page: Any, axe: Any, where: str, problems: list[str]) -> None:
    """Add to problems axe's serious and critical violations, and a page wider than the window."""
    results = axe.run(page).response
    for violation in results["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            problems.append(
                f"{where}: {violation['id']} ({violation['impact']}): {violation['help']} {targets}"
            )
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        wide = page.evaluate(WIDEST)
        problems.append(f"{where}: the page is {overflow} px wider than the window, because of {wide}")


def _kept_lists_appear(stack: Stack, version_id: int, timeout: float = 60.0) -> bool:
    """Return whether the activated version's kept lists are written (in the background) within timeout:
    the first user's row holds the fingerprint of that version."""
    from api.db import make_engine, make_session_factory
    from api.recommend.pipeline import fingerprint, read_user
    from api.versions.registry import load_active_model
    from api.versions.service import get_version

    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    user_id = stack.dataset.users[0].id
    deadline = time.monotonic() + timeout
    try:
        with sessions() as session:
            model = load_active_model(get_version(session=session, version_id=version_id))
        while time.monotonic() < deadline:
            with sessions() as session:
                user = read_user(session, user_id=user_id, history_length=model.model.history_length)
            kept = user.kept
            if kept is not None and kept.fingerprint == fingerprint(
                model, user, kept.newest_rating, int(time.time())
            ):
                return True
            time.sleep(0.5)
        return False
    finally:
        engine.dispose()
