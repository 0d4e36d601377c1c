"""The dashboard in headless Chromium (Debian's package, driven by Playwright) against the app under
uvicorn: sign in, retrain one epoch in the real worker, watch it finish, activate it, see the collection change."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from tests.admin.conftest import PASSWORD, TINY_FORM
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


@pytest.fixture(scope="session")
def browser_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: the test activates a new version, which other tests must not see."""
    return build_stack(database_factory, tmp_path_factory.mktemp("browser"), train=True)


@pytest.fixture
def server(browser_stack: Stack) -> Iterator[str]:
    """Yield the base URL of the app served by uvicorn on a free local port, in a thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(browser_stack.settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


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
            expect(page.locator("#chart-loss circle")).to_have_count(1)
            # validation HR@10 and NDCG@10 (sampled), HR@10 and Recall@20 (full ranking): a line each
            expect(page.locator("#chart-metrics polyline")).to_have_count(4)
            expect(page.locator("#chart-legend")).to_contain_text("HR@10 (full)")
            page.screenshot(path=str(shots / "run.png"), full_page=True)

            page.click("text=Runs")
            row = page.locator(f"#runs tr[data-version='{version_id}']")
            expect(row).to_contain_text("succeeded")
            expect(row).to_contain_text("HR@10")
            expect(row).to_contain_text("dashboard:admin")
            row.locator("button", has_text="Activate").click()

            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("#collection-name")).to_have_text(f"movies_v{version_id}")
            expect(page.locator("#collection-dim")).to_have_text("16")
            expect(page.locator("#collection-rows")).to_have_text(str(len(browser_stack.dataset.movies)))
            expect(page.locator("#active-model")).to_contain_text(f"Version {version_id}")
            page.screenshot(path=str(shots / "overview.png"), full_page=True)

            assert _kept_lists_appear(browser_stack, version_id), "activation kept no recommendation lists"

            page.goto(f"{server}/admin/playground?user_id=1&movie_id=1")
            expect(page.locator("#recommended li")).to_have_count(10)
            page.screenshot(path=str(shots / "playground.png"), full_page=True)
        finally:
            browser.close()


def _kept_lists_appear(stack: Stack, version_id: int, timeout: float = 60.0) -> bool:
    """Return whether the activated version's kept lists are written (in the background) within timeout:
    the first user's row holds the fingerprint of that version."""
    from api.db import make_engine, make_session_factory
    from api.recommend.service import fingerprint, read_user
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
                user = read_user(session=session, user_id=user_id)
            kept = user.kept
            if kept is not None and kept.fingerprint == fingerprint(
                model, user, kept.newest_rating, int(time.time())
            ):
                return True
            time.sleep(0.5)
        return False
    finally:
        engine.dispose()
