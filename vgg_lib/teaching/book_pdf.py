"""The whole book as one PDF, and the website as a zip, for reading offline.

    python -m vgg_lib.teaching.book_pdf      # `make pdf`; also the last step of `make book`

1. Jupyter Book builds the book as one page (``--builder singlehtml`` into ``_build/singlehtml``)
   from the same stored outputs as the site.
2. Debian's chromium (``chromium_path``; driven by Playwright, which downloads no browser) opens
   that page from a server on 127.0.0.1, loads every image, waits until MathJax has typeset every
   formula, opens every fold (solutions, the Colab set-up cells, hidden code and outputs:
   ``expandForPrint`` in book/_static/print.js) and prints it, A4 with page numbers, to
   ``_build/html/vgg-book.pdf``. No LaTeX. Solutions are printed right after their exercise.
3. The website ``make book`` built (``_build/html``, the PDF included) is zipped into
   ``_build/html/vgg-book-site.zip``: unzip it and open ``vgg-book/index.html``.

Both files lie in the site's own folder and are linked from its first page (book/intro.md), so
whatever publishes ``_build/html`` publishes them. The page count and the sizes are printed.
tests/test_book_pdf.py checks the PDF with poppler's pdftotext and pdfimages.
"""

import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from ..atomic_write import write_atomically
from .notebooks import command_line, find_root

PDF_NAME = "vgg-book.pdf"
ZIP_NAME = "vgg-book-site.zip"
ZIP_FOLDER = "vgg-book"  # the zip's top folder: vgg-book/index.html
# jupyter-book run by this interpreter (the project's .venv under make), wherever its script lives.
JUPYTER_BOOK = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
FOOTER = ('<div style="width:100%; font-size:8px; color:#555; text-align:center;">'
          '<span class="title"></span> · <span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def chromium_path():
    """Debian's chromium (``apt-get install chromium``), or None."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder):
    """``folder`` served on 127.0.0.1 (a free port) while the block runs: yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_single_page(root):
    """``jupyter-book build --builder singlehtml`` into ``<root>/_build/singlehtml`` (reusing the
    site build's parsed pages): that folder."""
    result = subprocess.run([*JUPYTER_BOOK, "build", str(root), "--builder", "singlehtml", "-n", "-W", "--keep-going"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError("the single-page build (jupyter-book build --builder singlehtml) failed:\n"
                           + result.stdout[-4000:] + result.stderr[-2000:])
    return Path(root) / "_build" / "singlehtml"


def _single_page(folder):
    """The page holding the whole book, at the top of ``folder``. Sphinx writes it under the root
    document's name (book/intro.html) but links its images, styles and sections as from the top
    folder, so a copy there (whole-book.html) is what gets printed."""
    folder = Path(folder)
    pages = [p for p in folder.rglob("*.html") if p.name != "whole-book.html"]
    if not pages:
        raise FileNotFoundError(f"{folder}: no .html page; run the single-page build first")
    page = max(pages, key=lambda p: p.stat().st_size)  # index.html only redirects to it
    shutil.copyfile(page, folder / "whole-book.html")
    return folder / "whole-book.html"


_WAIT_FOR_EVERYTHING = """async () => {
    const images = Array.from(document.images);
    images.forEach((img) => { img.loading = "eager"; });
    await Promise.all(images.map((img) => img.complete ? null : new Promise((done) => {
        img.addEventListener("load", done); img.addEventListener("error", done); setTimeout(done, 20000); })));
    if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
    if (document.fonts) await document.fonts.ready;
    return images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src);
}"""


# What the PDF says about itself, under the book's title.
ABOUT = ("This PDF is the whole book: every page of the website, in the order of its table of "
         "contents, with the outputs stored in the notebooks. <strong>Solutions are printed right after "
         "each exercise</strong>, in the box headed “Solution to Exercise N”. What the website folds away "
         "is printed open, the Colab set-up code at the start of each chapter included, and the "
         "interactive explorers appear as their static twins (first frame and table).")

# The note under the title; and since the single page puts every chapter where the first page's
# table of contents stands (inside its "Chapter map"), the chapters move to the end of the first
# page, and a list of them, linked, takes their place.
_FRONT_MATTER = """([about, stamp]) => {
    const heading = document.querySelector("article h1");
    const note = document.createElement("div");
    note.className = "admonition note pdf-about";
    note.innerHTML = `<p class="admonition-title">About this PDF</p><p>${about}</p><p>${stamp}</p>`;
    heading.after(note);
    const spans = Array.from(document.querySelectorAll('span[id^="document-"]'));
    const chapters = spans.map((span) => {
        const title = span.nextElementSibling && span.nextElementSibling.querySelector("h1, h2, h3");
        return title ? [span.nextElementSibling.id, title.textContent.replace(/#$/, "")] : null;
    }).filter(Boolean);
    const list = document.createElement("ol");
    list.className = "pdf-contents";
    list.innerHTML = chapters.map(([id, title]) => `<li><a href="#${id}">${title}</a></li>`).join("");
    const wrappers = [...new Set(spans.map((span) => span.parentElement))];  // one per part of the book
    const host = wrappers.length ? wrappers[0].closest("section") : null;
    const top = host && host.parentElement.closest("section");
    if (top) {
        wrappers.forEach((wrapper) => top.append(wrapper));
        host.append(list);
    } else {
        note.append(list);
    }
    return chapters.length;
}"""


def _stamp(root):
    """When and from which commit the PDF was made."""
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    made = time.strftime("%Y-%m-%d")
    return f"Made on {made}" + (f" from commit {commit.stdout.strip()}." if commit.returncode == 0 else ".")


def print_pdf(folder, pdf, stamp="", timeout_s=600):
    """Print the single page in ``folder`` to ``pdf`` with Debian's chromium. Returns a dict of
    what was printed (pages, bytes, images, seconds)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium (Debian; `make pdf` does "
                           "this as root)")
    emoji = subprocess.run(["fc-list", ":charset=2705"], capture_output=True, text=True) if shutil.which("fc-list") else None
    if emoji is not None and emoji.returncode == 0 and not emoji.stdout.strip():
        raise RuntimeError("no installed font draws ✅ (the exercises' checks print it): apt-get install -y "
                           "fonts-noto-color-emoji (Debian; `make pdf` does this as root)")
    start = time.perf_counter()
    page_path = _single_page(folder).relative_to(folder).as_posix()
    with serve(folder) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.set_default_timeout(timeout_s * 1000)
            page.goto(f"{base}/{page_path}", wait_until="load")
            missing = page.evaluate(_WAIT_FOR_EVERYTHING)
            if missing:
                raise RuntimeError(f"images that did not load, so would be missing from the PDF: {missing}")
            if not page.evaluate("() => typeof window.expandForPrint === 'function'"):
                raise RuntimeError("the page has no expandForPrint (book/_static/print.js): rebuild it")
            opened = page.evaluate("() => window.expandForPrint()")
            chapters = page.evaluate(_FRONT_MATTER, [ABOUT, stamp])
            page.emulate_media(media="print")
            figures = page.evaluate("""() => Array.from(document.querySelectorAll('article img'))
                .filter((img) => img.getClientRects().length > 0 && !img.src.endsWith('.svg'))
                .map((img) => [img.naturalWidth, img.naturalHeight])""")
            data = page.pdf(format="A4", print_background=True, outline=True, tagged=True, display_header_footer=True,
                            header_template="<span></span>", footer_template=FOOTER,
                            margin={"top": "14mm", "bottom": "16mm", "left": "14mm", "right": "14mm"})
        finally:
            browser.close()
    write_atomically(pdf, lambda handle: handle.write(data))
    return dict(pages=page_count(data), bytes=len(data), figures=figures, opened=opened, chapters=chapters,
                seconds=round(time.perf_counter() - start, 1))


def page_count(data):
    """Pages of a PDF that chromium wrote (its page objects are plain ``/Type /Page``)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def zip_site(html, target):
    """``html`` (the built site) as a zip with one top folder, ``ZIP_FOLDER``; the zip itself and
    unfinished temporary files left out. Returns the number of files."""
    html, target = Path(html), Path(target)
    files = sorted(p for p in html.rglob("*") if p.is_file() and p != target and not p.name.endswith(".tmp"))

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for path in files:
                stored = path.suffix.lower() in (".png", ".jpg", ".gif", ".woff", ".woff2", ".pdf", ".zip")
                archive.write(path, f"{ZIP_FOLDER}/{path.relative_to(html).as_posix()}",
                              compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)

    write_atomically(target, write)
    return len(files)


def _megabytes(n):
    return f"{n / 1e6:.1f} MB"


def main(argv=None):
    parser = command_line("vgg_lib.teaching.book_pdf", __doc__)
    parser.add_argument("--no-zip", action="store_true", help="make the PDF only")
    args = parser.parse_args(argv)
    root = find_root(args.root)
    html = root / "_build" / "html"
    started = time.perf_counter()
    single = build_single_page(root)
    built = time.perf_counter() - started
    printed = print_pdf(single, html / PDF_NAME, _stamp(root))
    print(f"{html / PDF_NAME}: {printed['pages']} pages, {_megabytes(printed['bytes'])}, {printed['chapters']} "
          f"chapters, {len(printed['figures'])} figures, {printed['opened']} folds opened; single-page build {built:.0f} s, printing {printed['seconds']:.0f} s")
    if not args.no_zip:
        if not (html / "index.html").is_file():
            print(f"{html} holds no site (make book builds it), so no zip was made")
        else:
            count = zip_site(html, html / ZIP_NAME)
            print(f"{html / ZIP_NAME}: the website, {count} files, {_megabytes((html / ZIP_NAME).stat().st_size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
