"""The built site as a reader meets it, in headless Chromium (Debian's chromium, driven by Playwright).

Every page of the table of contents is opened from a server on 127.0.0.1, on a desktop and at a
phone's width, and checked: it loads, logs no error, asks nothing of another host, shows its
images and typesets its formulas; chapters link to Colab and to their .ipynb; solutions stay
folded until clicked, and so is each chapter's Colab set-up cell (under its "Colab set-up"
label); the first page links the PDF and the zip of the site; search finds the receptive-field chapter; chapter 2's player follows its
slider; the phone layout never scrolls sideways and its navigation drawers open and close; dark
mode keeps figures and tables readable. Screenshots go to <build>/screenshots (and to
_build/screenshots in the repository).

    python -m pytest tests/test_site_browser.py      # about a minute; builds the site first

Chromium comes from Debian (``make test`` installs it as root: apt-get install -y chromium);
nothing is downloaded when the test runs.
"""

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from test_book_build import toc_files
from vgg_lib.teaching.book_pdf import CHROMIUM_FLAGS, chromium_path, serve
from vgg_lib.teaching.colab import FOLDED

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CHAPTER_WITH_PLAYER = "notebooks/02_receptive_fields"
SCREENSHOT_CHAPTER = "notebooks/03_small_filters"


@pytest.fixture(scope="module")
def site(book_build):
    result, html = book_build
    assert result.returncode == 0, "the book does not build: see tests/test_book_build.py"
    with serve(html) as base:
        yield base, html


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (Debian; `make test` does this as root)",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements.txt", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Reader:
    """One browser tab that records, for the page it opens, what went wrong on the way."""

    def __init__(self, browser, base, viewport, color_scheme="light"):
        self.base, self.host = base, urlparse(base).netloc
        self.context = browser.new_context(viewport=viewport, color_scheme=color_scheme,
                                           is_mobile=viewport["width"] < 600, has_touch=viewport["width"] < 600)
        self.page = self.context.new_page()
        self.problems = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"JavaScript error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed request: {r.url} ({r.failure})"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        self.page.on("request", self._request)

    def _request(self, request):
        url = urlparse(request.url)
        if url.scheme not in ("data", "blob", "about") and url.netloc != self.host:
            self.problems.append(f"request to another host: {request.url}")

    def open(self, page):
        self.problems.clear()
        response = self.page.goto(f"{self.base}/{page}.html", wait_until="load")
        assert response.status == 200, f"{page}: HTTP {response.status}"
        # MathJax typesets after loading; wait until it has finished (or fail on a timeout).
        self.page.evaluate("async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; }")
        # The browser fetches some resources (the favicon) after "load": let them finish here, so
        # that the next page's navigation does not abort them (net::ERR_ABORTED, reported against
        # that page) and a resource that really fails is reported against the page that asked.
        self.page.wait_for_load_state("networkidle")
        return self.page

    def close(self):
        self.context.close()


def _images_not_loaded(page):
    return page.evaluate("""async () => {
        const images = Array.from(document.images);
        images.forEach((img) => { img.loading = "eager"; });
        await Promise.all(images.map((img) => img.complete ? null : new Promise((done) => {
            img.addEventListener("load", done); img.addEventListener("error", done); setTimeout(done, 10000); })));
        return images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src);
    }""")


def _raw_tex(page):
    """Bits of the page text (code excluded) still written in TeX delimiters."""
    return page.evaluate(r"""() => {
        const copy = document.body.cloneNode(true);
        copy.querySelectorAll("pre, code, script, style, textarea, .highlight").forEach((n) => n.remove());
        const text = copy.textContent;
        const found = [];
        for (const delimiter of ["\\(", "\\[", "$$", "\\begin{"]) {
            const at = text.indexOf(delimiter);
            if (at >= 0) found.push(text.slice(Math.max(0, at - 30), at + 40).replace(/\s+/g, " "));
        }
        return found;
    }""")


def _colab_url(page):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    owner_repo = urlparse(repository["url"]).path.strip("/")
    prefix = (repository.get("path_to_book") or "").strip("/")
    path = f"{prefix}/{page}.ipynb" if prefix else f"{page}.ipynb"
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{repository['branch']}/{path}"


def _screenshot(page, html, name):
    for folder in (html.parent / "screenshots", ROOT / "_build" / "screenshots"):
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


PAGES = toc_files()


def test_every_page_on_a_desktop(browser, site):
    base, html = site
    reader = Reader(browser, base, DESKTOP)
    failures = []
    for name in PAGES:
        page = reader.open(name)
        problems = []
        problems += [f"image not loaded: {src}" for src in _images_not_loaded(page)]
        problems += [f"formula not typeset: …{bit}…" for bit in _raw_tex(page)]
        if name.startswith("notebooks/"):
            links = page.eval_on_selector_all('a[href*="colab.research.google.com"]', "els => els.map(e => e.href)")
            if _colab_url(name) not in links:
                problems.append(f"no Colab link to {_colab_url(name)} (found {links})")
            downloads = page.eval_on_selector_all('a[href$=".ipynb"]', "els => els.map(e => e.href)")
            local = [url for url in downloads if urlparse(url).netloc == reader.host]
            if not local:
                problems.append("no .ipynb download link")
            else:
                response = reader.context.request.get(local[0])
                if response.status != 200 or "cells" not in json.loads(response.body()):
                    problems.append(f".ipynb download {local[0]} gives HTTP {response.status}")
            problems += _solution_folding(page)
            problems += _setup_cell_folding(page)
        failures += [f"{name}: {p}" for p in reader.problems + problems]
    try:
        assert failures == [], "\n".join(failures)
    finally:
        reader.close()


def _solution_folding(page):
    solutions = page.locator("div.solution.dropdown")
    if solutions.count() == 0:
        return ["no solution on the page"]
    first = solutions.first
    body = first.locator(":scope > :not(.admonition-title)").first
    problems = []
    if body.is_visible():
        problems.append("a solution is open before it is clicked")
    first.locator(".admonition-title").click()
    try:
        body.wait_for(state="visible", timeout=3000)
    except Exception:
        problems.append("a solution stays closed after a click")
    return problems


def _setup_cell_folding(page):
    """The Colab set-up cell is the first code cell, folded under its label until clicked."""
    fold = page.locator("article .cell").first.locator("details.hide.above-input")
    if fold.count() == 0:
        return ["the Colab set-up cell (the first code cell) is not folded"]
    summary = fold.locator("summary")
    code = fold.locator(".cell_input")
    problems = []
    if FOLDED["mystnb"]["code_prompt_show"] not in summary.inner_text():
        problems.append(f"the set-up cell's fold is labelled {summary.inner_text()!r}")
    if code.is_visible():
        problems.append("the Colab set-up code shows before it is clicked")
    summary.click()
    try:
        code.wait_for(state="visible", timeout=3000)
        if "Colab set-up: does nothing outside Google Colab" not in code.inner_text():
            problems.append("the first fold does not hold the Colab set-up code")
    except Exception:
        problems.append("the Colab set-up code stays folded after a click")
    return problems


def test_desktop_sidebar_hides_and_comes_back(browser, site):
    base, html = site
    reader = Reader(browser, base, DESKTOP)
    try:
        page = reader.open("notebooks/01_building_vgg")
        sidebar = page.locator("#pst-primary-sidebar")
        toggle = page.locator(".primary-toggle:visible").first
        assert sidebar.is_visible()
        toggle.click()
        page.wait_for_timeout(400)
        assert not sidebar.is_visible(), "the sidebar toggle does not hide the table of contents"
        toggle.click()
        sidebar.wait_for(state="visible", timeout=3000)
        _screenshot(page, html, "chapter-light")
        page = reader.open("book/intro")
        downloads = page.locator(".book-downloads a")
        assert downloads.count() == 2 and all(downloads.nth(i).is_visible() for i in range(2))
        assert page.evaluate("() => document.querySelector('.book-downloads').getBoundingClientRect().bottom") < \
            DESKTOP["height"], "the PDF and zip links are not on the first screen"
        _screenshot(page, html, "home-light")
        assert reader.problems == []
    finally:
        reader.close()


def test_search_finds_the_receptive_field_chapter(browser, site):
    base, html = site
    reader = Reader(browser, base, DESKTOP)
    try:
        reader.page.goto(f"{base}/search.html?q=receptive+field", wait_until="load")
        hit = reader.page.locator('#search-results a[href*="02_receptive_fields"]').first
        hit.wait_for(timeout=20000)
        assert reader.problems == []
    finally:
        reader.close()


def test_the_animation_player_follows_its_slider(browser, site):
    base, html = site
    reader = Reader(browser, base, PHONE)
    try:
        page = reader.open(CHAPTER_WITH_PLAYER)
        slider = page.locator("input.anim-slider").first
        frame = page.locator(".animation img").first
        slider.scroll_into_view_if_needed()
        before = frame.get_attribute("src")
        slider.focus()
        page.keyboard.press("End")
        page.wait_for_timeout(300)
        assert frame.get_attribute("src") != before, "the animation does not change frame with its slider"
        assert page.locator("input.anim-slider").first.input_value() != "0"
        # Every control of the player fits inside the chapter's output box at phone width.
        outside = page.evaluate("""() => {
            const player = document.querySelector(".animation");
            const box = player.closest(".cell_output").getBoundingClientRect();
            return Array.from(player.querySelectorAll("button, input, label")).filter((el) => {
                const r = el.getBoundingClientRect();
                return r.left < box.left - 0.5 || r.right > box.right + 0.5;
            }).map((el) => el.title || el.className || el.textContent);
        }""")
        assert outside == [], f"cut off at {PHONE['width']} px: {outside}"
        assert reader.problems == []
    finally:
        reader.close()


def test_every_page_on_a_phone(browser, site):
    base, html = site
    reader = Reader(browser, base, PHONE)
    failures = []
    try:
        for name in PAGES:
            page = reader.open(name)
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                failures.append(f"{name}: scrolls sideways by {overflow} px at {PHONE['width']} px")
            shots = {"book/intro": "home-phone", SCREENSHOT_CHAPTER: "chapter-phone"}
            if name in shots:
                _screenshot(page, html, shots[name])
            drawer_open = (lambda: _screenshot(page, html, "home-phone-drawer")) if name == "book/intro" else None
            failures += [f"{name}: {p}" for p in _drawers_open_and_close(page, drawer_open)]
            failures += [f"{name}: {p}" for p in reader.problems]
        assert failures == [], "\n".join(failures)
    finally:
        reader.close()


def _drawers_open_and_close(page, while_open=None):
    problems = []
    for toggle, dialog, required in ((".primary-toggle", "#pst-primary-sidebar-modal", True),
                                     (".secondary-toggle", "#pst-secondary-sidebar-modal", False)):
        button = page.locator(f"{toggle}:visible").first
        if button.count() == 0:
            if required:
                problems.append(f"no visible {toggle} button")
            continue
        button.click()
        try:
            page.wait_for_selector(f"{dialog}[open]", timeout=3000)
        except Exception:
            problems.append(f"{toggle}: the drawer does not open")
            continue
        if toggle == ".primary-toggle":
            if page.locator(f"{dialog} nav a:visible").count() < 5:
                problems.append("the navigation drawer shows no table of contents")
            if while_open:
                page.wait_for_timeout(300)
                while_open()
        page.keyboard.press("Escape")
        try:
            page.wait_for_selector(f"{dialog}[open]", state="detached", timeout=3000)
        except Exception:
            problems.append(f"{toggle}: the drawer does not close")
    return problems


CONTRAST = r"""(selector) => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
        for (let n = el; n; n = n.parentElement) {
            const c = rgb(getComputedStyle(n).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    return Array.from(document.querySelectorAll(selector)).filter((el) => el.offsetParent).map((el) => {
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
        return {text: el.textContent.trim().slice(0, 30), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
    });
}"""


def test_dark_mode_keeps_figures_and_tables_readable(browser, site):
    base, html = site
    reader = Reader(browser, base, DESKTOP, color_scheme="dark")
    try:
        page = reader.open("book/intro")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        _screenshot(page, html, "home-dark")
        failures = []
        for name in PAGES:
            page = reader.open(name)
            cells = page.evaluate(CONTRAST, "article table td, article table th")
            failures += [f"{name}: table text {c['text']!r} has contrast {c['ratio']:.1f}" for c in cells if c["ratio"] < 4.5]
            # Figures are drawn with dark ink: an output image must sit on a light backing.
            backing = page.evaluate("""() => Array.from(document.querySelectorAll('.cell_output img')).map((img) => {
                const c = (getComputedStyle(img).backgroundColor.match(/[\\d.]+/g) || []).map(Number);
                return c.length === 3 || (c.length === 4 && c[3] > 0.5) ? (c[0] + c[1] + c[2]) / 3 : 0; })""")
            failures += [f"{name}: a figure sits on a dark background" for value in backing if value < 200]
            if name == SCREENSHOT_CHAPTER:
                page.locator(".cell_output img").first.scroll_into_view_if_needed()
                _screenshot(page, html, "chapter-dark")
        assert failures == [], "\n".join(failures)
    finally:
        reader.close()
