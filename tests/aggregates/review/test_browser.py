"""The HTML review in a real browser: Debian's headless Chromium opens it from disk, offline.

Playwright drives the system `chromium` (`make install` installs it; Playwright's own
browser downloads are never used). The test asserts the page rendered: no console
error, no request beyond the file itself, every chart drawn with a size, nothing wider
than the page on screen at A4 width or in print, and it prints to A4 and Letter PDF.
The screenshot and the PDF stay in `test-artifacts/` for a person (or CI) to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from aggregates.review.command import write_review
from streams.events import Event
from streams.settings import Settings
from tests.aggregates.review.conftest import AS_OF
from tests.services import free_port

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
#: The flags a headless Chromium needs where the network is closed (else it floods
#: refused connections) and no sandbox or GPU exists.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
A4_WIDTH_PX = 794  # 210 mm at 96 px per inch

OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 0.5);
  return {page: document.documentElement.scrollWidth, width, wide: wide.map(e => e.tagName + ' ' + e.className)};
}"""


@pytest.fixture(scope="module")
def report_file(generated: tuple[Settings, list[Event]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings, _ = generated
    path = tmp_path_factory.mktemp("review") / "review.html"
    assert write_review(settings, "month", AS_OF, path, f"http://127.0.0.1:{free_port()}") == 0
    return path


@pytest.fixture(scope="module")
def browser_page(report_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Page, list[str], list[str]]]:
    """The report loaded in a fresh offline Chromium profile; its console problems and requests."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run `make install`"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
            offline=True, args=CHROMIUM_ARGS, viewport={"width": A4_WIDTH_PX, "height": 1123})
        page = context.new_page()
        problems: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report_file.as_uri(), wait_until="load")
        yield page, problems, requests
        context.close()


def test_the_report_loads_from_disk_without_console_errors_or_network(
    browser_page: tuple[Page, list[str], list[str]], report_file: Path
) -> None:
    page, problems, requests = browser_page
    assert problems == []
    assert requests == [report_file.as_uri()]
    assert page.title() == "Lead-to-customer review, November 2026"


def test_every_chart_is_drawn_with_a_size(browser_page: tuple[Page, list[str], list[str]]) -> None:
    page, _, _ = browser_page
    sizes = page.evaluate("() => [...document.querySelectorAll('figure svg')].map(s => {"
                          "const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
    assert len(sizes) == 4
    assert all(width > 300 and height > 100 for width, height in sizes), sizes


def test_nothing_is_wider_than_an_a4_page_on_screen_or_in_print(browser_page: tuple[Page, list[str], list[str]]) -> None:
    page, _, _ = browser_page
    for media in ("screen", "print"):
        page.emulate_media(media=media)
        layout = page.evaluate(OVERFLOW_JS)
        assert layout["wide"] == [] and layout["page"] <= layout["width"], (media, layout)
    page.emulate_media(media="screen")


def test_the_overflow_check_sees_an_element_wider_than_the_page(browser_page: tuple[Page, list[str], list[str]]) -> None:
    page, _, _ = browser_page
    page.evaluate("() => { const d = document.createElement('div'); d.id = 'wide'; d.style.width = '2000px';"
                  " document.body.appendChild(d); }")
    try:
        assert "DIV " in page.evaluate(OVERFLOW_JS)["wide"]
    finally:
        page.evaluate("() => document.getElementById('wide').remove()")


def test_the_report_prints_to_a4_and_letter_and_leaves_a_screenshot(browser_page: tuple[Page, list[str], list[str]]) -> None:
    page, _, _ = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    for paper in ("A4", "Letter"):
        pdf = page.pdf(format=paper, print_background=True)
        assert pdf.startswith(b"%PDF-") and len(pdf) > 50_000
        (ARTIFACTS / f"review-report-{paper.lower()}.pdf").write_bytes(pdf)
    shot = ARTIFACTS / "review-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
