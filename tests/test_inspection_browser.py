"""The inspection report in a real browser: Debian's Chromium, headless, driven by Playwright.

The report of real media (images, WAV and Vorbis audio, H.264 video from ../shared/data/media)
opens from the file system with no console error; every image in view has decoded; paging and
search work; the planted near-duplicate pair is one cluster with both members and the kept one
marked; every audio and video element loads its source. Screenshots of each section are saved
under pytest's tmp path and ``test-artifacts/inspection/`` (gitignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hf_mmbuilder.inspection import inspect

from inspection_data import SEARCH_WORD, report_dataset, report_rejects

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "inspection"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def page(tmp_path):
    """A page of headless Chromium collecting console errors and page errors in ``page.errors``."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.errors = []
        page.on("console", lambda message: page.errors.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
        page.on("pageerror", lambda error: page.errors.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: page.errors.append(f"request failed: {request.url} {request.failure}"))
        yield page
        browser.close()


def screenshot(page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)


def images_in_view(page) -> list:
    """``[src, complete, naturalWidth]`` of every <img> of the shown section inside the viewport."""
    return page.evaluate("""() => [...document.querySelectorAll('.section.active img')].filter((img) => {
        const box = img.getBoundingClientRect();
        return box.bottom > 0 && box.top < window.innerHeight && box.width > 0;
    }).map((img) => [img.getAttribute('src'), img.complete, img.naturalWidth])""")


def wait_for_images(page) -> None:
    page.wait_for_function("() => [...document.querySelectorAll('.section.active img')].every((img) => img.complete)")


def test_report_in_chromium(shared_data, tmp_path, page):
    media_root = shared_data / "media"
    media = {"images": ["img2.jpg", "img1.png", "blip.jpg", "cat.jpg"], "audio": "audio3.ogg", "video": "video1.mp4"}
    ds = report_dataset(media_root, media)
    rejects = report_rejects(tmp_path, ds)
    inspect(ds, tmp_path / "report", clusters="minhash", selection=[0, 1, 3], rejects=rejects, title="browser test")
    page.goto((tmp_path / "report" / "index.html").as_uri())

    # Overview: title, the counts and a plot per distribution.
    page.wait_for_selector("#overview.active figure")
    assert page.inner_text("#title") == "browser test"
    # text length, turns, images, audios and videos per row, language, image width and height, durations
    assert page.locator("#overview figure").count() == 10
    assert page.locator("#overview .card b").all_inner_texts() == [str(len(ds)), "1", "2"]
    screenshot(page, tmp_path, "overview")

    # Rows: 20 per page, conversations and the document drawn with their media, images decoded.
    page.click("nav a[data-section=rows]")
    page.wait_for_selector("#row-list article")
    wait_for_images(page)
    assert page.locator("#row-list article").count() == 20
    assert page.inner_text("#page-info") == f"page 1 of 3 · {len(ds)} matching rows"
    shown = images_in_view(page)
    assert shown and all(complete and width > 0 for _, complete, width in shown), shown
    assert page.locator("#row-list article[data-row='2'] .chunk").count() == 3
    assert page.locator("#row-list article[data-row='4'] .missing").inner_text() == "image #0: token without a path in the row's images list"
    screenshot(page, tmp_path, "rows")
    # Every image of the page has decoded, in view or not; then the audio and video players load.
    assert page.evaluate("() => [...document.querySelectorAll('#rows img')].every((img) => img.complete && img.naturalWidth > 0)")
    for selector in ("#rows audio", "#rows video"):
        assert page.locator(selector).count() == 1
        page.locator(selector).scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelector('{selector}').readyState >= 1", timeout=15000)
        state = page.evaluate(f"""() => {{ const el = document.querySelector('{selector}');
            return [el.error, el.readyState >= 1, el.duration > 0, el.currentSrc.startsWith('file://')]; }}""")
        assert state == [None, True, True, True], (selector, state)
    page.locator("#rows video").scroll_into_view_if_needed()
    screenshot(page, tmp_path, "rows-media")

    page.click("#next-page")
    assert page.inner_text("#page-info") == f"page 2 of 3 · {len(ds)} matching rows"
    assert page.locator("#row-list article").first.get_attribute("data-row") == "20"
    page.click("#next-page")
    assert page.locator("#row-list article").count() == len(ds) - 40
    assert page.is_disabled("#next-page") and not page.is_disabled("#prev-page")
    page.click("#prev-page")
    assert page.locator("#row-list article").first.get_attribute("data-row") == "20"

    page.fill("#row-search", SEARCH_WORD)
    assert page.inner_text("#page-info") == "page 1 of 1 · 1 matching rows"
    assert page.locator("#row-list article").get_attribute("data-row") == "3"
    wait_for_images(page)
    assert all(complete and width > 0 for _, complete, width in images_in_view(page))
    screenshot(page, tmp_path, "rows-search")
    page.fill("#row-search", "Item 1")
    # "item 1", "item 10" ... "item 19" in the filler rows: 11 matches.
    assert page.inner_text("#page-info") == "page 1 of 1 · 11 matching rows"
    page.fill("#row-search", "no row says this")
    assert page.inner_text("#page-info") == "page 1 of 1 · 0 matching rows"
    assert page.locator("#row-list article").count() == 0
    page.fill("#row-search", "")
    assert page.locator("#row-list article").count() == 20

    # Duplicates: the planted pair as one cluster, both members, the first kept, the edits marked.
    page.click("nav a[data-section=duplicates]")
    page.wait_for_selector("#duplicates .cluster")
    assert page.locator("#duplicates .cluster").count() == 1
    cluster = page.locator("#duplicates .cluster[data-cluster='1']")
    assert [member.get_attribute("data-row") for member in cluster.locator(".member").all()] == ["1", "5"]
    assert cluster.locator(".member.kept").get_attribute("data-row") == "1"
    assert cluster.locator(".member[data-row='5'] del").all_inner_texts() == [",", "."]
    assert cluster.locator(".member[data-row='5'] ins").all_inner_texts() == ["!"]
    wait_for_images(page)
    shown = images_in_view(page)
    assert len(shown) == 2 and all(complete and width > 0 for _, complete, width in shown)
    screenshot(page, tmp_path, "duplicates")

    # Selection: every row a point, the three selected outlined; the quota table adds up.
    page.click("nav a[data-section=selection]")
    page.wait_for_selector("#selection svg.scatter")
    assert page.locator("#selection circle").count() == len(ds)
    assert page.locator("#selection circle.selected").count() == 3
    selected = page.locator("#selection table tbody tr td:nth-child(3)").all_inner_texts()
    assert sum(int(value) for value in selected) == 3
    screenshot(page, tmp_path, "selection")

    # Rejects: the loader's two records with reasons and raw text, the filter's dropped rows.
    page.click("nav a[data-section=rejects]")
    page.wait_for_selector("#rejects table")
    tables = page.locator("#rejects table")
    assert tables.nth(0).locator("tbody tr").count() == 2
    assert tables.nth(1).locator("tbody tr").count() == len(rejects[1])
    first = tables.nth(0).locator("tbody tr").first
    first.locator("summary").click()
    assert '"no-conversations"' in first.locator("pre").inner_text()
    screenshot(page, tmp_path, "rejects")

    assert page.errors == []
    shots = ["duplicates.png", "overview.png", "rejects.png", "rows-media.png", "rows-search.png", "rows.png", "selection.png"]
    assert sorted(path.name for path in tmp_path.glob("*.png")) == shots
    assert all((ARTIFACTS / name).read_bytes() == (tmp_path / name).read_bytes() for name in shots)
