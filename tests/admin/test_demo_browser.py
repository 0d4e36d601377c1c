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
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import ConsoleMessage, Locator, Page, Request, Route, expect, sync_playwright
from sqlalchemy import func, select

from api.db import make_engine, make_session_factory
from api.experiments.models import Feedback, Impression
from api.movies.models import Movie
from api.movies.titles import display_title
from api.ratings.models import Rating
from api.users.models import Occupation, User
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


def _words(title: str) -> list[str]:
    return re.findall(r"[^\W_]+", title.casefold())


def _rating_counts(stack: Stack) -> dict[int, int]:
    """Return every movie's number of ratings now, read from the database."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            return {movie: count for movie, count in session.execute(select(Movie.id, Movie.rating_count))}
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
    # The titles with a word that begins with it: what the search finds
    matching = [m for m in demo_stack.dataset.movies if any(w.startswith(word) for w in _words(m.title))]

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
            expect(page.locator("#whoami")).to_contain_text(f"Showing user {user}:")
            expect(recs).to_have_count(10)
            expect(page.locator("#recs-list .because").first).to_contain_text("Because you liked")

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

            # Search the catalogue, every page of it, titles as people read them.
            page.fill("#search-text", word)
            page.get_by_role("button", name="Search", exact=True).click()
            found = page.locator("#search-list > li")
            expect(found).to_have_count(10)
            while page.locator("#search-more").is_visible():
                shown = found.count()
                page.click("#search-more")
                expect(found).not_to_have_count(shown)
            # Ranked: the titles holding the whole word first, then the most rated, then by id.
            counts = _rating_counts(demo_stack)
            ranked = sorted(matching, key=lambda m: (word not in _words(m.title), -counts[m.id], m.id))
            assert _ids(found) == [str(m.id) for m in ranked]
            shown_titles = [display_title(m.title).removesuffix(f" ({m.year})") for m in ranked]
            assert found.locator(".title").all_inner_texts() == shown_titles
            expect(page.locator("#search-status")).to_contain_text(f"{len(matching)} movies matching")

            # Similar movies of a search result; rate one of each list.
            found.first.get_by_role("button", name=re.compile("^Similar to ")).click()
            similar = page.locator("#similar-list > li")
            expect(page.locator("#similar-title")).to_have_text(
                f"Similar to {found.first.locator('.title').inner_text()}"
            )
            expect(similar).to_have_count(10)
            assert str(ranked[0].id) not in _ids(similar)  # the movie whose similar ones they are
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
            page.get_by_text("Or describe someone").click()
            page.get_by_role("button", name="Create this user").click()
            expect(page.locator("#whoami")).to_contain_text(
                re.compile(r"Showing user \d+: F, 25–34, programmer, zip 10001")
            )
            expect(error).to_be_hidden()
            new_user = int(re.findall(r"user (\d+):", page.locator("#whoami").inner_text())[0])
            assert new_user not in {u.id for u in demo_stack.dataset.users}
            expect(page.locator("#recs-status")).to_contain_text(f"10 recommendations for user {new_user}.")
            expect(recs.first.locator(".because")).to_contain_text("Popular: among the most rated movies")

            # A visitor: anonymous profile recommendations, rated from the list in the page.
            page.get_by_role("button", name="Browse as a visitor").click()
            expect(page.locator("#whoami")).to_contain_text("Showing a visitor")
            expect(error).to_be_hidden()
            expect(page.locator("#recs-status")).to_contain_text("10 recommendations for you, a visitor.")
            visitor_top = _ids(recs)[0]
            _rate(page, recs.first, 1, [])
            assert visitor_top not in _ids(recs)

            # A phone: one list at a time, nothing wider than the window.
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


@contextmanager
def _demo_page(server: str, width: int, height: int) -> Iterator[tuple[Page, list[str]]]:
    """Yield the demo page at that size, loaded and ready, with the list of what went wrong in it (other
    hosts asked, the CSP's refusals, uncaught errors); the test asserts the list empty at its end."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does)")
    origin = urlsplit(server).netloc
    problems: list[str] = []

    def same_origin_only(route: Route) -> None:
        if urlsplit(route.request.url).netloc != origin:
            problems.append(f"request to another host: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", same_origin_only)
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            response = page.goto(f"{server}/demo/")
            assert response is not None and response.ok
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            yield page, problems
        finally:
            browser.close()


def _counts(stack: Stack) -> dict[int, tuple[int, float]]:
    """Return each movie's rating count and average, read from the database."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(
                select(Rating.movie_id, func.count(), func.avg(Rating.rating)).group_by(Rating.movie_id)
            )
            return {m: (n, float(average)) for m, n, average in rows}
    finally:
        engine.dispose()


def _starters(stack: Stack) -> tuple[int, int]:
    """Return the user with the most ratings (the lowest id of equals) and the newest without any."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            counts = dict(
                session.execute(select(Rating.user_id, func.count()).group_by(Rating.user_id)).all()
            )
            users = session.scalars(select(User.id)).all()
    finally:
        engine.dispose()
    return min(counts, key=lambda u: (-counts[u], u)), max(u for u in users if u not in counts)


def _new_user(stack: Stack) -> int:
    """Create a user without ratings, as a sign-up would, and return its id."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            user = User(gender="M", age=35, occupation_id=4, zip_code="02139")
            session.add(user)
            session.flush()
            return user.id
    finally:
        engine.dispose()


def _pick(page: Page, user: int) -> Locator:
    """Show a user chosen by id; return the items of their recommendations."""
    page.fill("#user-id", str(user))
    page.get_by_role("button", name="Use this user").click()
    expect(page.locator("#whoami")).to_contain_text(re.compile(rf"\buser {user}:", re.I))
    recs = page.locator("#recs-list > li")
    expect(recs).to_have_count(10)
    return recs


def _rated(n: int, average: float) -> str:
    """Return how the page says people rated a movie."""
    if n == 0:
        return "no ratings yet"
    if n < 10:
        return f"{average:.1f} ★ from only {n} rating" + ("s" if n > 1 else "")
    return f"{average:.1f} ★ from {n:,} ratings"


def _new_movie(stack: Stack) -> int:
    """Add a movie nobody rated and return its id."""
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            movie = Movie(title="Qwxyz Unwatched, The (2001)", year=2001)
            session.add(movie)
            session.flush()
            return movie.id
    finally:
        engine.dispose()


def _stored_title(stack: Stack, movie_id: int) -> str:
    engine = make_engine(stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.get_one(Movie, movie_id).title
    finally:
        engine.dispose()


def test_the_page_opens_on_an_active_user_and_offers_a_new_one_and_a_visitor(
    demo_stack: Stack, database_factory: DatabaseFactory
) -> None:
    new = _new_user(demo_stack)
    settings = demo_stack.settings.model_copy(update={"demo": True})
    with served(settings) as server:  # after the new user: the page's starters are read at its first load
        active, unrated = _starters(demo_stack)
        assert unrated == new
        with _demo_page(server, 1280, 800) as (page, problems):
            # Nothing clicked: the most active user's recommendations are there.
            recs = page.locator("#recs-list > li")
            expect(recs).to_have_count(10)
            expect(page.locator("#whoami")).to_contain_text(f"Showing user {active}:")
            expect(page.locator("#recs-title")).to_have_text(f"Recommendations for user {active}")
            expect(page.locator("#user-id")).to_have_value(str(active))
            starters = page.get_by_role("group", name="Start from")
            first = starters.get_by_role(
                "button", name=re.compile(rf"^An active user: user {active} \(\d+ ratings\)$")
            )
            expect(first).to_have_attribute("aria-pressed", "true")

            # The newest user without ratings: the popular movies, said so.
            starters.get_by_role("button", name=f"A new user: user {unrated} (no ratings yet)").click()
            expect(page.locator("#whoami")).to_contain_text(
                f"Showing user {unrated}: M, 35–44, college/grad student"
            )
            expect(page.locator("#recs-status")).to_contain_text(f"10 recommendations for user {unrated}.")
            expect(recs.first.locator(".because")).to_contain_text("Popular: among the most rated movies")
            expect(first).to_have_attribute("aria-pressed", "false")

            # A visitor, from demographics only.
            starters.get_by_role("button", name="A visitor: F, 25–34, programmer").click()
            expect(page.locator("#whoami")).to_contain_text("Showing a visitor: F, 25–34, programmer.")
            expect(page.locator("#recs-status")).to_contain_text("10 recommendations for you, a visitor.")
            expect(page.locator("#user-id")).to_have_value("")
            _audit(page, Axe(), "starters at 1280 px", problems)
        assert problems == [], "\n".join(problems)


def test_recommendations_show_how_people_rated_them_and_why_not_the_model_score(
    server: str, demo_stack: Stack
) -> None:
    with _demo_page(server, 1280, 800) as (page, problems):
        recs = _pick(page, demo_stack.dataset.users[1].id)
        counts = _counts(demo_stack)
        for item in recs.all():
            n, average = counts.get(int(item.get_attribute("data-movie-id") or 0), (0, 0.0))
            expect(item.locator(".facts")).to_contain_text(_rated(n, average))
            expect(item.locator(".because")).to_contain_text(
                re.compile("^(Because you liked |Picked by the model)")
            )
            assert "score" not in item.inner_text()
        # The developer view shows the model's scores.
        page.get_by_label("Developer view").check()
        expect(recs.first.locator(".facts")).to_contain_text(re.compile(r"score \d\.\d{3}, model"))
        # A movie nobody rated says so, and one rated by a few says how few.
        few = next(m for m, (n, _) in sorted(counts.items()) if n < 10)
        for movie_id, said in ((_new_movie(demo_stack), _rated(0, 0)), (few, _rated(*counts[few]))):
            title = _stored_title(demo_stack, movie_id)
            page.fill("#search-text", title)
            page.get_by_role("button", name="Search", exact=True).click()
            found = page.locator(f'#search-list > li[data-movie-id="{movie_id}"]')
            expect(found.locator(".facts")).to_contain_text(said)
    assert problems == [], "\n".join(problems)


def test_on_a_phone_each_list_is_one_tap_away(server: str, demo_stack: Stack, tmp_path: Path) -> None:
    with _demo_page(server, 390, 844) as (page, problems):
        recs = _pick(page, demo_stack.dataset.users[2].id)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(tmp_path / "demo-390-first.png"))
        tabs = page.get_by_role("tablist", name="Lists")
        for name in ("For you", "Search", "Similar"):  # on the first screen
            expect(tabs.get_by_role("tab", name=name)).to_be_in_viewport(ratio=1)
        expect(page.locator("#search-text")).to_be_hidden()
        tabs.get_by_role("tab", name="Search").click()
        expect(tabs.get_by_role("tab", name="Search")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#search-text")).to_be_in_viewport()
        expect(recs.first).to_be_hidden()
        # A rating in the search changes the list of the tab behind: its tab says so until shown.
        page.fill("#search-text", "the")
        page.get_by_role("button", name="Search", exact=True).click()
        _rate(page, page.locator("#search-list > li").first, 4, [])
        expect(tabs.get_by_role("tab", name="For you")).to_have_text("For you updated")
        tabs.get_by_role("tab", name="For you").click()
        expect(page.locator("#recs-status")).to_contain_text("You rated ")
        expect(tabs.get_by_role("tab", name="For you")).to_have_text("For you")
        tabs.get_by_role("tab", name="Search").click()
        expect(page.locator("#search-text")).to_be_in_viewport()

        # Far down the list, the tabs are still in view: the bar stays at the top.
        tabs.get_by_role("tab", name="For you").click()
        recs.last.scroll_into_view_if_needed()
        expect(tabs).to_be_in_viewport()
        box = tabs.bounding_box()
        assert box is not None and 0 <= box["y"] <= 1, box
        # Similar on the last movie shows its similar movies at once, under the bar.
        recs.last.get_by_role("button", name=re.compile("^Similar to ")).click()
        expect(tabs.get_by_role("tab", name="Similar")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#similar-list > li")).to_have_count(10)
        expect(page.locator("#similar-title")).to_be_in_viewport()
        tabs.get_by_role("tab", name="Similar").focus()
        page.keyboard.press("ArrowLeft")  # the tabs pattern: arrows move between tabs
        expect(tabs.get_by_role("tab", name="Search")).to_be_focused()
        expect(page.locator("#search-text")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{overflow} px wider than the window: {page.evaluate(WIDEST)}"
        axe = Axe()
        _audit(page, axe, "search tab at 390 px", problems)
        page.set_viewport_size({"width": 1280, "height": 800})
        expect(tabs).to_be_hidden()
        for panel in ("#recs", "#search", "#similar"):
            expect(page.locator(panel)).to_be_visible()
        _audit(page, axe, "every list at 1280 px", problems)
    assert problems == [], "\n".join(problems)


def test_after_a_failed_switch_the_page_says_who_it_still_shows(server: str, demo_stack: Stack) -> None:
    with _demo_page(server, 1280, 800) as (page, problems):
        shown = str(demo_stack.dataset.users[3].id)
        before = _ids(_pick(page, int(shown)))
        page.fill("#user-id", "987654")
        page.get_by_role("button", name="Use this user").click()
        error = page.locator("#error")
        expect(error.locator(".code")).to_have_text("NOT_FOUND")
        expect(error).to_contain_text(f"user 987654 does not exist. The page still shows user {shown}.")
        expect(page.locator("#user-id")).to_have_value(shown)  # the box and the page agree
        expect(page.locator("#whoami")).to_contain_text(f"Showing user {shown}:")
        expect(page.locator("#recs-title")).to_have_text(f"Recommendations for user {shown}")
        assert _ids(page.locator("#recs-list > li")) == before

        # Signed in as another user, whose list then fails: no list stays under the new name.
        def unavailable(route: Route) -> None:
            if "UserRecommendations" in (route.request.post_data or ""):
                down = {"message": "the database is unavailable", "extensions": {"code": "UNAVAILABLE"}}
                route.fulfill(json={"data": None, "errors": [down]})
            else:
                route.fallback()

        page.route("**/graphql", unavailable)
        other = demo_stack.dataset.users[4].id
        page.fill("#user-id", str(other))
        page.get_by_role("button", name="Use this user").click()
        expect(error.locator(".code")).to_have_text("UNAVAILABLE")
        expect(page.locator("#whoami")).to_have_text(f"Showing user {other}.")
        expect(page.locator("#recs-title")).to_have_text(f"Recommendations for user {other}")
        expect(page.locator("#recs-list > li")).to_have_count(0)
        expect(page.locator("#recs-status")).to_have_text(
            f"No recommendations for user {other}: the request failed."
        )
    assert problems == [], "\n".join(problems)


def test_the_footer_says_the_data_is_the_synthetic_sample_and_the_form_offers_every_occupation(
    demo_stack: Stack,
) -> None:
    engine = make_engine(demo_stack.settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            if session.scalar(select(Occupation).where(Occupation.name == "librarian")) is None:
                session.add(
                    Occupation(id=session.scalar(select(func.max(Occupation.id))) + 1, name="librarian")
                )
        with make_session_factory(engine)() as session:
            names = list(session.scalars(select(Occupation.name).order_by(Occupation.id)))
    finally:
        engine.dispose()
    settings = demo_stack.settings.model_copy(update={"demo": True})
    with served(settings) as server, _demo_page(server, 1280, 800) as (page, problems):
        expect(page.locator("#dataset")).to_have_text(
            "The data is the synthetic sample: its titles look real, but its movies, users and ratings are "
            "made up."
        )
        options = page.locator('#profile-form select[name="occupation"] option')
        expect(options).to_have_count(len(names))
        assert options.all_text_contents() == names  # ML-1M's first, then what datasets added
        expect(page.locator('#profile-form select[name="occupation"]')).to_have_value("12")  # programmer
    assert problems == [], "\n".join(problems)
