"""The dashboard's tables and forms in headless Chromium, at 1280×800 and 390×844: the runs table fits
its box with every button inside and reads as one card a run on a phone; the compare page says B against
A and which is better; the API keys page lays a scope on a line and copies a new key; a run that has not
trained a step says what it waits for. axe-core finds nothing serious or critical on any of them."""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from api.db import make_engine, make_session_factory
from api.versions.models import ModelVersion
from api.versions.service import fail_version, mark_running, queue_version, record_progress, start_version
from tests.admin.conftest import PASSWORD, served
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, _check
from tests.api.conftest import Stack, build_stack, train_or_copy
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.browser

WIDTHS = ((1280, 800), (390, 844))
BETTER_HR = 1.1  # the second version's test HR@10 against the active one's
WORSE_NDCG = 0.9  # and its NDCG@10


@pytest.fixture(scope="module")
def tables_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: an active version, a second succeeded one with a better test HR@10 and a worse
    NDCG@10 (a run that can be activated), and a run the dashboard's worker left interrupted."""
    root = tmp_path_factory.mktemp("tables-browser")
    stack = build_stack(database_factory, root, train=True)
    engine = make_engine(stack.settings.resolved_database_url)
    sessions = make_session_factory(engine)
    second = train_or_copy(sessions, stack.settings, database_factory.backend, root)
    with sessions.begin() as session:
        version = session.get(ModelVersion, second)
        assert version is not None and version.metrics
        m = version.metrics
        version.metrics = {**m, "hr@10": m["hr@10"] * BETTER_HR, "ndcg@10": m["ndcg@10"] * WORSE_NDCG}
        params = {"epochs": 3, "learning_rate": 0.01, "embedding_dim": 16, "batch_size": 128}
        failed = start_version(session=session, params=params, started_by="dashboard:admin").id
        error = "interrupted: the training worker stopped before the run finished (exit code -9)"
        fail_version(session=session, version_id=failed, error=error)
    engine.dispose()
    return stack


@pytest.fixture
def sessions(tables_stack: Stack) -> Iterator[sessionmaker]:
    engine = make_engine(tables_stack.settings.resolved_database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _signed_in(browser: Any, server: str, width: int, height: int, **options: Any) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    page.goto(f"{server}/admin/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    return page


# The boxes of a runs table's parts that must be seen: each as [what, left, right, top, bottom].
RUN_PARTS = """(() => {
  const parts = [];
  const box = (what, el) => { const r = el.getBoundingClientRect(); parts.push([what, r.left, r.right, r.top, r.bottom]); };
  document.querySelectorAll('#runs tr[data-version]').forEach((row) => {
    const v = row.dataset.version;
    box(`version ${v} link`, row.querySelector('a'));
    box(`version ${v} compare box`, row.querySelector('input.pick'));
    box(`version ${v} status`, row.querySelector('.status'));
    row.querySelectorAll('.metric').forEach((m) => box(`version ${v} ${m.textContent}`, m));
    row.querySelectorAll('button').forEach((b) => box(`version ${v} ${b.textContent} button`, b));
  });
  return parts;
})()"""

# For each run, how many lines the first text of its "Started (UTC)" cell takes.
DATE_LINES = """(() => {
  const heads = [...document.querySelectorAll('#runs thead th')].map((th) => th.textContent.trim());
  const column = heads.indexOf('Started (UTC)');
  return [...document.querySelectorAll('#runs tr[data-version]')].map((row) => {
    const cell = row.children[column];
    const text = [...cell.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const range = document.createRange();
    range.selectNodeContents(text);
    const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    return [row.dataset.version, text.textContent.trim(), tops.size];
  });
})()"""


def test_the_runs_table_fits_at_1280_and_shows_every_run_s_facts_and_actions_at_390(
    tables_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe, serious = Axe(), []
    with served(tables_stack.settings) as server:
        for width, height in WIDTHS:
            page = _signed_in(browser, server, width, height)
            page.goto(f"{server}/admin/runs")
            _check(page, axe, f"runs at {width} px", serious)
            page.screenshot(path=str(tmp_path / f"runs-{width}.png"), full_page=True)
            box = page.evaluate(
                "(() => { const s = document.querySelector('#runs').closest('.scroll');"
                " const r = s.getBoundingClientRect(); return [r.left, r.right, s.scrollWidth, s.clientWidth]; })()"
            )
            left, right = max(box[0], 0), min(box[1], width)
            assert box[2] <= box[3], (
                f"at {width} px the runs table is {box[2] - box[3]} px wider than its box"
            )
            parts = page.evaluate(RUN_PARTS)
            assert any("Activate button" in what for what, *_ in parts), parts  # the second version's
            outside = [what for what, x0, x1, *_ in parts if x0 < left - 0.5 or x1 > right + 0.5]
            assert not outside, f"at {width} px these reach outside the window or the table's box: {outside}"
            if width == 1280:
                wrapped = [(v, text, lines) for v, text, lines in page.evaluate(DATE_LINES) if lines != 1]
                assert not wrapped, f"start dates wrap: {wrapped}"
            else:  # a card a run: its parts stacked inside the row, one above the other
                rows = page.evaluate(
                    "[...document.querySelectorAll('#runs tr[data-version]')].map((r) => r.getBoundingClientRect().height)"
                )
                assert min(rows) > 120, f"at 390 px the runs are not stacked as cards: {rows}"
            page.context.close()
    assert not serious, "\n".join(serious)


def test_compare_says_b_against_a_and_which_figures_are_better(
    tables_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    active = tables_stack.version_id
    assert active is not None
    candidate = active + 1
    axe, serious = Axe(), []
    with served(tables_stack.settings) as server:
        for width, height in WIDTHS:
            page = _signed_in(browser, server, width, height)
            # named once (the run page's link) and twice in either order: A is the active version
            for query in (f"v={candidate}", f"v={candidate}&v={active}", f"v={active}&v={candidate}"):
                page.goto(f"{server}/admin/compare?{query}")
                heads = page.locator("#compare thead th")
                expect(heads.nth(1)).to_contain_text(f"A: Version {active}")
                expect(heads.nth(2)).to_contain_text(f"B: Version {candidate}")
                expect(heads.nth(3)).to_have_text("Change, B against A")
                expect(page.locator("#compare-sides")).to_contain_text(
                    f"version {candidate} against version {active}, the active one"
                )
            hr = page.locator("#compare tbody tr", has_text="HR@10 (sampled)").first.locator("td.change")
            expect(hr).to_contain_text(f"(+{100 * (BETTER_HR - 1):.1f}%) better")
            ndcg = page.locator("#compare tbody tr", has_text="NDCG@10 (sampled)").first.locator("td.change")
            expect(ndcg).to_contain_text(f"({100 * (WORSE_NDCG - 1):.1f}%) worse")
            full = page.locator("#compare tbody tr", has_text="HR@10 (full)").locator("td.change")
            expect(full).to_contain_text("no change")
            colours = [
                cell.locator(".verdict").evaluate("(e) => getComputedStyle(e).color")
                for cell in (hr, ndcg, full)
            ]
            assert len(set(colours)) == 3, f"better, worse and no change share a colour: {colours}"
            _check(page, axe, f"compare at {width} px", serious)
            page.screenshot(path=str(tmp_path / f"compare-{width}.png"), full_page=True)
            page.context.close()
    assert not serious, "\n".join(serious)


# For the name box: whether its placeholder fits inside it, in the box's own font.
PLACEHOLDER_FITS = """(input) => {
  const style = getComputedStyle(input);
  const context = document.createElement('canvas').getContext('2d');
  context.font = style.font;
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return [context.measureText(input.placeholder).width, room];
}"""

# For each scope: the tops of its checkbox, code and meaning, which one line shares.
SCOPE_LINES = """[...document.querySelectorAll('#create-key fieldset label')].map((label) =>
  [...label.querySelectorAll('input, code, span')].map((e) => Math.round(e.getBoundingClientRect().bottom)))"""


def test_the_keys_page_lays_a_scope_a_line_and_copies_a_new_key(
    tables_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    axe, serious = Axe(), []
    with served(tables_stack.settings) as server:
        for width, height in WIDTHS:
            page = _signed_in(
                browser, server, width, height, permissions=["clipboard-read", "clipboard-write"]
            )
            page.goto(f"{server}/admin/keys")
            text_width, room = page.locator("#create-key input[name=name]").evaluate(PLACEHOLDER_FITS)
            assert text_width <= room, (
                f"at {width} px the name box cuts its placeholder ({text_width} > {room})"
            )
            lines = page.evaluate(SCOPE_LINES)
            assert len(lines) == 4 and all(len(parts) == 3 for parts in lines), lines
            if width == 1280:  # a phone may wrap a long meaning under its code
                assert all(max(p) - min(p) <= 8 for p in lines), (
                    f"a scope's parts sit on several lines: {lines}"
                )
            else:
                assert all(abs(p[0] - p[1]) <= 8 for p in lines), f"a scope's box and code are apart: {lines}"
            page.fill("#create-key input[name=name]", f"shop at {width}")
            page.check("#create-key input[value=read]")
            page.click("#create-key button[type=submit]")
            key = page.locator("#new-key").inner_text()
            assert re.fullmatch(r"mrk_[0-9a-f]+_\S+", key), key
            copy = page.locator("#created-key button", has_text="Copy")
            copy.click()
            expect(page.locator("#created-key button")).to_have_text("Copied")
            expect(page.locator("#created-key [role=status]")).to_have_text("Copied to the clipboard.")
            assert page.evaluate("navigator.clipboard.readText()") == key
            _check(page, axe, f"keys, a key created, at {width} px", serious)
            page.screenshot(path=str(tmp_path / f"keys-{width}.png"), full_page=True)
            page.context.close()

        # Without the clipboard (an address that is not secure): the key is selected for copying by hand.
        page = _signed_in(browser, server, 1280, 800)
        page.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
        page.goto(f"{server}/admin/keys")
        page.fill("#create-key input[name=name]", "no clipboard")
        page.check("#create-key input[value='tokens:issue']")
        page.click("#create-key button[type=submit]")
        page.locator("#created-key button", has_text="Copy").click()
        expect(page.locator("#created-key [role=status]")).to_contain_text("the key is selected")
        assert page.evaluate("window.getSelection().toString()") == page.locator("#new-key").inner_text()
        page.context.close()
    assert not serious, "\n".join(serious)


def test_a_run_that_has_not_trained_a_step_says_what_it_waits_for(
    tables_stack: Stack, sessions: sessionmaker, browser: Any, tmp_path: Path
) -> None:
    """Queued as the dashboard queues it (admin.worker.start_training), then taken by a worker (this
    process stands for it), then at its first step: the run page follows it without a reload."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect

    axe, serious = Axe(), []
    with served(tables_stack.settings) as server:
        with sessions.begin() as session:
            params = {"epochs": 2, "learning_rate": 0.005, "embedding_dim": 16, "batch_size": 128}
            version_id = queue_version(session=session, params=params, started_by="dashboard:admin").id
        try:
            for width, height in WIDTHS:
                page = _signed_in(browser, server, width, height)
                waiting = re.compile(r"^waiting for the training worker to start · started \d+s ago$")
                expect(page.locator("#busy")).to_contain_text(
                    f"Version {version_id} is queued (waiting for the"
                )
                page.goto(f"{server}/admin/runs")
                row = page.locator(f"#runs tr[data-version='{version_id}'] .waiting")
                expect(row).to_have_text(waiting)
                _check(page, axe, f"runs, a run queued, at {width} px", serious)
                page.screenshot(path=str(tmp_path / f"runs-queued-{width}.png"), full_page=True)
                page.goto(f"{server}/admin/runs/{version_id}")
                expect(page.locator("#run-detail")).to_have_text(waiting)
                _check(page, axe, f"a queued run at {width} px", serious)
                page.screenshot(path=str(tmp_path / f"run-queued-{width}.png"), full_page=True)
                page.context.close()

            page = _signed_in(browser, server, 1280, 800)
            page.goto(f"{server}/admin/runs/{version_id}")
            expect(page.locator("#run-detail")).to_have_text(waiting)
            worker = {"pid": os.getpid(), "host": socket.gethostname()}
            with sessions.begin() as session:
                mark_running(session=session, version_id=version_id, progress={"percent": 0.0, **worker})
            expect(page.locator("#run-detail")).to_have_text(
                re.compile(
                    r"^reading the ratings and building the model, no training step yet · started \d+s ago$"
                )
            )
            step = {
                "epoch": 1,
                "epochs": 2,
                "step": 3,
                "steps": 10,
                "loss": 5.1,
                "percent": 15.0,
                "metrics": {},
            }
            with sessions.begin() as session:
                record_progress(session=session, version_id=version_id, progress={**step, **worker})
            expect(page.locator("#run-detail")).to_contain_text("epoch 1/2 · step 3/10 · loss 5.1000")
            page.context.close()
        finally:
            with sessions.begin() as session:  # the stack trains nothing after: nothing stays busy
                fail_version(session=session, version_id=version_id, error="interrupted: the test ended")
    assert not serious, "\n".join(serious)
