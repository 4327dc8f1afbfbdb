"""The whole book as one PDF (vgg_lib/teaching/book_pdf.py), read back with poppler's pdftotext
and pdfimages: every page of _toc.yml is in it under its title, every figure the site shows is in
it at full resolution, every solution and every Colab set-up cell is printed open, no MyST or TeX
markup is left raw, and the site's first page links the PDF and the site's zip. The page count is
stated in the test summary.

    python -m pytest tests/test_book_pdf.py      # builds the site and the PDF of a copy first

The PDF is made from the copy of the repository that tests/conftest.py's ``book_build`` built (a
single-page build reusing that build's parsed pages, then printed by Debian's chromium).
"""

import collections
import re
import shutil
import subprocess
import zipfile
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from test_book_build import toc_files
from vgg_lib.teaching import book_pdf

ROOT = Path(__file__).resolve().parent.parent
SETUP_CELL_FIRST_LINE = "# Colab set-up: does nothing outside Google Colab."
# Markup that must not reach the page as text: MyST directives and roles, fences, TeX delimiters.
RAW_MARKUP = [r"```", r":::", r"\{[a-z][a-z0-9_-]*(?::[a-z-]+)?\}`", r"\{(?:solution|exercise)(?:-start|-end)?\}",
              r"\{(?:code-cell|glue|tableofcontents|bibliography|figure|admonition|dropdown|toctree|"
              r"list-table|margin|note|warning|math|eval)[^}]*\}", r"\\\(", r"\\\[", r"\$\$", r"\\begin\{"]


def _poppler(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: apt-get install -y poppler-utils (Debian; `make test` does this as root)",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def printed(book_build, summary):
    result, html = book_build
    assert result.returncode == 0, "the book does not build: see tests/test_book_build.py"
    root = html.parent.parent
    single = book_pdf.build_single_page(root)
    info = book_pdf.print_pdf(single, html / book_pdf.PDF_NAME, "Made by the test suite.")
    book_pdf.zip_site(html, html / book_pdf.ZIP_NAME)
    pdf = html / book_pdf.PDF_NAME
    text = subprocess.run([_poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    pdfinfo = subprocess.run([_poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", pdfinfo, re.M).group(1))
    summary.append(f"book PDF: {pages} pages, {pdf.stat().st_size / 1e6:.1f} MB, {len(info['figures'])} figures, "
                   f"printed in {info['seconds']:.0f} s")
    return dict(info=info, pdf=pdf, html=html, single=single / "whole-book.html", pages=pages,
                text=text, flat=_flat(text))


def _flat(text):
    """Text with line breaks, hyphenation at line ends and runs of spaces undone."""
    return re.sub(r"\s+", " ", re.sub(r"-\n(?=\S)", "-", text))


class _Reader(HTMLParser):
    """The title (first heading) of a page, and the text inside its code elements."""

    def __init__(self):
        super().__init__()
        self.depth, self.in_code, self.heading = 0, 0, None
        self.title, self.code = [], []

    def handle_starttag(self, tag, attrs):
        if tag in ("code", "pre"):
            self.in_code += 1
        if tag == "h1" and self.heading is None:
            self.heading = True
        if tag == "a" and self.heading is True and dict(attrs).get("class") == "headerlink":
            self.heading = "link"

    def handle_endtag(self, tag):
        if tag in ("code", "pre"):
            self.in_code -= 1
        if tag == "a" and self.heading == "link":
            self.heading = True
        if tag == "h1" and self.heading:
            self.heading = False

    def handle_data(self, data):
        if self.heading is True:
            self.title.append(data)
        if self.in_code:
            self.code.append(data)


def _read(path):
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader


def test_the_page_count_is_real(printed):
    assert printed["pages"] == printed["info"]["pages"] > 50  # pdfinfo agrees with the build's own count


def test_every_page_of_the_table_of_contents_is_in_the_pdf_under_its_title(printed):
    missing = []
    for page in toc_files():
        title = _flat("".join(_read(printed["html"] / f"{page}.html").title)).strip()
        assert title, f"{page}.html has no title"
        if title not in printed["flat"]:
            missing.append(f"{page}: {title!r}")
    assert not missing, "chapters missing from the PDF: " + "; ".join(missing)
    assert printed["info"]["chapters"] == len(toc_files()) - 1  # every page but the first, in the contents


def _site_figures(html):
    """(width, height) of every raster figure the site's pages show (Sphinx gathers the figures
    and the stored outputs' images in _images/), each file once."""
    sources = set()
    for page in toc_files():
        path = html / f"{page}.html"
        for src in re.findall(r'<img\b[^>]*\bsrc="([^"]*_images/[^"]+)"', path.read_text(encoding="utf-8")):
            if not src.endswith(".svg"):
                sources.add((path.parent / src).resolve())
    return [Image.open(source).size for source in sorted(sources)]


def test_every_figure_is_in_the_pdf_at_full_resolution(printed):
    listing = subprocess.run([_poppler("pdfimages"), "-list", str(printed["pdf"])], capture_output=True,
                             text=True, check=True).stdout.splitlines()[2:]
    in_pdf = collections.Counter((int(f[3]), int(f[4])) for f in map(str.split, listing) if f[2] == "image")
    site = collections.Counter(_site_figures(printed["html"]))
    on_paper = collections.Counter(tuple(size) for size in printed["info"]["figures"])
    assert sum(site.values()) >= 20  # the figures of the chapters, found
    assert not site - on_paper, f"figures of the site not printed: {site - on_paper}"
    assert not on_paper - in_pdf, f"figures printed but not in the PDF at their size: {on_paper - in_pdf}"
    # the explorer's static twin (chapter 2) shows its first frame on paper
    assert sum(on_paper.values()) > sum(site.values())


def test_every_fold_is_printed_open(printed):
    flat = printed["flat"]
    page = printed["single"].read_text(encoding="utf-8")
    solutions = len(re.findall(r'<div class="solution dropdown', page))
    assert solutions >= 10 and len(re.findall(r"Solution to Exercise \d+", flat)) == solutions
    # each solution's first line of prose (up to any formula) is in the PDF
    bodies = re.findall(r'<div class="solution dropdown[^"]*"[^>]*>.*?<section id="solution-content">\s*<p>(.*?)</p>',
                        page, re.S)
    assert len(bodies) >= solutions // 2
    bare_pdf = re.sub(r"\s+", "", flat)
    for body in bodies:
        words = re.split(r"\\\(|\$", _flat(re.sub(r"<[^>]+>", "", unescape(body))))[0][:50]  # up to any formula
        bare = re.sub(r"\s+", "", words)  # pdftotext puts spaces around inline code
        assert len(bare) < 10 or bare in bare_pdf, f"a solution is not printed: {words!r}"
    chapters = [p for p in toc_files() if p.startswith("notebooks/")]
    assert flat.count(SETUP_CELL_FIRST_LINE) == len(chapters)
    assert "Solutions are printed right after each exercise" in flat  # said on the page


def test_no_markup_is_left_raw(printed):
    """A pattern may appear in the PDF only as often as in the page's code (where the maintainers'
    and instructors' pages quote MyST)."""
    code = _flat("".join(_read(printed["single"]).code))
    leaked = {}
    for pattern in RAW_MARKUP:
        found, quoted = len(re.findall(pattern, printed["flat"])), len(re.findall(pattern, code))
        if found > quoted:
            leaked[pattern] = [m.group(0) for m in re.finditer(pattern, printed["flat"])][:5]
    assert not leaked, f"raw markup in the PDF text (beyond what code quotes): {leaked}"


def test_the_first_page_links_the_pdf_and_the_zip(printed):
    html = printed["html"]
    first = (html / f"{toc_files()[0]}.html")
    links = re.findall(r'<a href="([^"]+\.(?:pdf|zip))"', first.read_text(encoding="utf-8"))
    assert sorted(Path(link).name for link in links) == sorted([book_pdf.PDF_NAME, book_pdf.ZIP_NAME])
    for link in links:
        assert (first.parent / link).resolve().is_file(), link
    with zipfile.ZipFile(html / book_pdf.ZIP_NAME) as archive:
        names = set(archive.namelist())
    folder = book_pdf.ZIP_FOLDER
    assert {f"{folder}/index.html", f"{folder}/{book_pdf.PDF_NAME}"} <= names
    assert all(f"{folder}/{page}.html" in names for page in toc_files())
    assert f"{folder}/{book_pdf.ZIP_NAME}" not in names
