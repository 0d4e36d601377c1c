"""The demo front end (api/demo) in headless Chromium against the app under uvicorn, every other origin
blocked: pick a user, open a recommendation's similar movies (one click recorded on the list's
impression; a failed recording changes nothing on the page), rate the top recommendation 1 star and see
it leave the list and a new one enter, search with pagination, similar movies, errors shown with their
codes, a new user, a visitor; at 1280 and 390 px. Prints the page's own time from a click on a star to
the refreshed list (p50 over the rate clicks)."""

from __future__ import annotations

import re
import shutil
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, Request, Route, expect, sync_playwright
from sqlalchemy import select

from api.db import make_engine, make_session_factory
from api.experiments.models import Feedback, Impression
from tests.admin.conftest import served
from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.api.conftest import Stack, build_stack
from tests.conftest import DatabaseFactory

TOP_CLICKS = 5  # rate the top recommendation 1 star this many times


pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """A stack of its own: the test creates ratings that other tests must not see."""
    return build_stack(database_factory, tmp_path_factory.mktemp("demo-browser"), train=True)


@pytest.fixture
def server(demo_stack: Stack) -> Iterator[str]:
    """Yield the base URL of the app outside development with the demo switched on, under uvicorn."""
    settings = demo_stack.settings.model_copy(update={"demo": True})
    with served(settings) as url:
        yield url


def _is_feedback(request: Request) -> bool:
    return request.url.endswith("/graphql") and "recordFeedback" in (request.post_data or "")


def _recorded(stack: Stack, user: int) -> tuple[dict[int, tuple[int, str]], list[tuple[int, int, str]]]:
    """Return the user's impressions (id: version, movie ids as shown) and feedback (impression, movie,
    kind), read from the database."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            shown = session.execute(
                select(Impression.id, Impression.version_id, Impression.movie_ids).where(
                    Impression.user_id == user
                )
            )
            feedback = session.execute(
                select(Feedback.impression_id, Feedback.movie_id, Feedback.kind).where(
                    Feedback.user_id == user
                )
            )
            return {i: (v, movies) for i, v, movies in shown}, [(i, m, kind) for i, m, kind in feedback]
    finally:
        engine.dispose()


def _ids(items: Locator) -> list[str]:
    return [i.get_attribute("data-movie-id") or "" for i in items.all()]


def _rate(page: Page, item: Locator, stars: float, timings: list[float]) -> None:
    """Click a (half) star of a movie's item, wait for the refreshed list, and keep the page's measure."""
    body = page.locator("body")
    done = int(body.get_attribute("data-rate-count") or 0)
    item.get_by_role("button", name=f"Rate {stars:g} star" + ("" if stars == 1 else "s"), exact=True).click()
    expect(body).to_have_attribute("data-rate-count", str(done + 1))
    timings.append(float(body.get_attribute("data-rate-ms") or "nan"))


# Elements reaching past the window that hold no element doing so: what makes a page scroll sideways.
WIDEST = """[...document.body.querySelectorAll('*')]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((e) => ![...e.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 1))
  .slice(0, 3).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className)"""


def test_the_demo_in_a_real_browser(
    server: str, demo_stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    from axe_playwright_python.sync_playwright import Axe

    origin = urlsplit(server).netloc
    elsewhere: list[str] = []  # requests to any other host, aborted
    problems: list[str] = []  # what the CSP refused, scripts' uncaught errors, axe's serious findings
    timings: list[float] = []  # the page's click-to-refreshed-list measures, ms
    feedback_sent: list[str] = []  # the bodies of the page's recordFeedback requests
    feedback_fails = False  # answer recordFeedback with the API's error, as when the database is down

    def same_origin_only(route: Route) -> None:
        if urlsplit(route.request.url).netloc != origin:
            elsewhere.append(route.request.url)
            route.abort()
        elif feedback_fails and _is_feedback(route.request):
            down = {"message": "the database is unavailable", "extensions": {"code": "UNAVAILABLE"}}
            route.fulfill(json={"data": None, "errors": [down]})
        else:
            route.continue_()

    def on_request(request: Request) -> None:
        if _is_feedback(request):
            feedback_sent.append(request.post_data or "")

    def on_console(message: ConsoleMessage) -> None:
        # Failed to load resource: the 404 the test asks for; the page shows it (asserted below)
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    user = demo_stack.dataset.users[0].id
    words = Counter(
        w for m in demo_stack.dataset.movies for w in set(re.findall(r"[a-z]{4,}", m.title.lower()))
    )
    word = next(w for w, n in sorted(words.items()) if 11 <= n <= 30)  # two or three pages of 10
    matching = [str(m.id) for m in demo_stack.dataset.movies if word in m.title.lower()]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", same_origin_only)
        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("request", on_request)
        axe = Axe()
        try:
            response = page.goto(f"{server}/demo/")
            assert response is not None and response.ok
            body = page.locator("body")
            expect(body).to_have_attribute("data-ready", "true")
            expect(page.locator("#model")).to_contain_text(f"Model version {demo_stack.version_id}")
            expect(page.locator("#genre option")).to_have_count(1 + 18)  # "Any genre" and ML-1M's

            # Pick a user: the page signs in through /demo/session and reads with the user's token.
            page.fill("#user-id", str(user))
            page.get_by_role("button", name="Use this user").click()
            recs = page.locator("#recs-list > li")
            expect(recs).to_have_count(10)
            expect(page.locator("#whoami")).to_contain_text(f"User {user}:")
            expect(page.locator("#recs-list .because").first).to_contain_text("Because you liked")
            expect(recs.first.locator(".facts")).to_contain_text("score ")

            # Open a recommendation's similar movies: one click is recorded, on the movie and on the
            # impression of the list shown, which the footer names with the version that served it.
            shown = _ids(recs)
            served = page.locator("#served")
            expect(served).to_contain_text(f"This list: model version {demo_stack.version_id}, impression ")
            impression = int(served.locator("code").inner_text())
            with page.expect_response(lambda r: _is_feedback(r.request)) as answer:
                recs.nth(2).get_by_role("button", name=re.compile("^Similar to ")).click()
            assert answer.value.json()["data"]["recordFeedback"]["recordedAt"], answer.value.json()
            expect(page.locator("#similar-list > li")).to_have_count(10)
            clicked = [(impression, int(shown[2]), "click")]
            impressions, feedback = _recorded(demo_stack, user)
            assert impressions[impression] == (demo_stack.version_id, ",".join(shown))
            assert feedback == clicked

            # A recording that fails is logged, not shown: the similar movies open all the same.
            feedback_fails = True
            title = recs.nth(3).locator(".title").inner_text()
            with page.expect_console_message(lambda m: "recordFeedback" in m.text) as logged:
                recs.nth(3).get_by_role("button", name=re.compile("^Similar to ")).click()
            assert logged.value.type == "warning", logged.value.text
            assert "the database is unavailable" in logged.value.text, logged.value.text
            expect(page.locator("#similar-title")).to_have_text(f"Similar to {title}")
            expect(page.locator("#error")).to_be_hidden()
            feedback_fails = False

            # Search the catalogue, every page of it.
            page.fill("#search-text", word)
            page.get_by_role("button", name="Search", exact=True).click()
            found = page.locator("#search-list > li")
            expect(found).to_have_count(10)
            while page.locator("#search-more").is_visible():
                shown = found.count()
                page.click("#search-more")
                expect(found).not_to_have_count(shown)
            assert _ids(found) == matching
            expect(page.locator("#search-status")).to_contain_text(f"{len(matching)} movies matching")

            # Similar movies of a search result; rate one of each list.
            found.first.get_by_role("button", name=re.compile("^Similar to ")).click()
            similar = page.locator("#similar-list > li")
            expect(page.locator("#similar-title")).to_have_text(
                f"Similar to {found.first.locator('.title').inner_text()}"
            )
            expect(similar).to_have_count(10)
            assert matching[0] not in _ids(similar)
            _rate(page, found.nth(1), 5, timings)
            _rate(page, similar.first, 3.5, timings)  # a half star: the left half of the fourth
            expect(similar.first.locator(".star.lit")).to_have_count(7)
            expect(page.locator("#my-ratings")).to_contain_text(" 3.5 ★")  # as the API stored it

            # Rate the top recommendation 1 star: it leaves the list, a new one enters, marked.
            for _ in range(TOP_CLICKS):
                before = _ids(recs)
                _rate(page, recs.first, 1, timings)
                after = _ids(recs)
                entered = [i for i in after if i not in before]
                assert before[0] not in after and len(after) == 10 and entered, (before, after)
                assert _ids(page.locator("#recs-list > li.new")) == entered
                expect(page.locator("#recs-list > li.new .badge").first).to_have_text("new")
                expect(page.locator("#recs-status")).to_contain_text("1 star.")
                expect(page.locator("#recs-status")).to_contain_text("Left the list: ")
            expect(page.locator("#my-ratings")).to_contain_text("Latest ratings: ")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(tmp_path / "demo-1280.png"))
            page.screenshot(path=str(tmp_path / "demo-1280-full.png"), full_page=True)
            _audit(page, axe, "signed in at 1280 px", problems)

            # Errors, in words and with their code: the API's, and the demo back end's.
            page.fill("#year-from", "2000")
            page.fill("#year-to", "1990")
            page.get_by_role("button", name="Filter").click()
            error = page.locator("#error")
            expect(error).to_be_visible()
            expect(error.locator(".code")).to_have_text("BAD_USER_INPUT")
            expect(error).to_contain_text("yearFrom must not be after yearTo")
            page.screenshot(path=str(tmp_path / "demo-error-1280.png"))
            error.get_by_role("button", name="Dismiss").click()
            expect(error).to_be_hidden()
            page.fill("#year-from", "")
            page.fill("#year-to", "")
            page.fill("#user-id", "987654")
            page.get_by_role("button", name="Use this user").click()
            expect(error.locator(".code")).to_have_text("NOT_FOUND")
            expect(error).to_contain_text("user 987654 does not exist")

            # A new user, from the demographics: no ratings yet, so the popular movies.
            page.get_by_role("button", name="Create this user").click()
            expect(page.locator("#whoami")).to_contain_text(
                re.compile(r"User \d+: F, 25–34, programmer, zip 10001")
            )
            expect(error).to_be_hidden()
            new_user = int(re.findall(r"User (\d+):", page.locator("#whoami").inner_text())[0])
            assert new_user not in {u.id for u in demo_stack.dataset.users}
            expect(page.locator("#recs-status")).to_contain_text(f"10 recommendations for user {new_user}.")
            expect(recs.first.locator(".facts")).to_contain_text("popular pick")

            # A visitor: anonymous profile recommendations, rated from the list in the page.
            page.get_by_role("button", name="Browse as a visitor").click()
            expect(page.locator("#whoami")).to_contain_text("A visitor")
            expect(error).to_be_hidden()
            expect(page.locator("#recs-status")).to_contain_text("10 recommendations for you, a visitor.")
            visitor_top = _ids(recs)[0]
            _rate(page, recs.first, 1, [])
            assert visitor_top not in _ids(recs)

            # A phone: one column, nothing wider than the window.
            page.set_viewport_size({"width": 390, "height": 844})
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{overflow} px wider than the window: {page.evaluate(WIDEST)}"
            page.screenshot(path=str(tmp_path / "demo-390.png"), full_page=True)
            _audit(page, axe, "visitor at 390 px", problems)
        finally:
            browser.close()

    assert elsewhere == [], f"requests to other hosts: {elsewhere}"
    # Similar on a search result and the ratings send no feedback.
    assert len(feedback_sent) == 2, feedback_sent
    assert _recorded(demo_stack, user)[1] == clicked
    assert problems == [], "\n".join(problems)
    assert len(timings) >= TOP_CLICKS + 2 and all(t > 0 for t in timings), timings
    with capsys.disabled():
        print(
            f"\ndemo, click on a star to the refreshed list ({demo_stack.settings.resolved_database_url.split(':')[0]}):"
            f" p50 {statistics.median(timings):.1f} ms over {len(timings)} clicks"
            f" (each: {', '.join(f'{t:.0f}' for t in timings)} ms); screenshots in {tmp_path}"
        )


def _audit(page: Page, axe: Any, where: str, problems: list[str]) -> None:
    """Add axe-core's serious and critical findings on the page to problems."""
    for violation in axe.run(page).response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            problems.append(f"{where}: {violation['id']}: {violation['help']} {targets}")
