"""Sphinx extension: a site that is self-contained and readable without a network.

Listed in _config.yml (sphinx.local_extensions). At build time it

* serves MathJax 3 from the site (the files of the pinned PyPI package sphinx-mathjax-offline,
  only the parts a page can load: the tex-chtml component, its fonts and lazily loaded
  extensions) instead of from a CDN;
* adds book/_static (the sidebar-toggle fix, the site's style sheet with its print rules, the
  script that opens every fold before printing, the favicon);
* writes each set-up script only once per page (sphinx-thebe and sphinx-togglebutton register
  theirs twice under Jupyter Book, and a second ``const THEBE_JS_URL`` is a SyntaxError);
* drops style sheets that stored outputs link from a CDN (matplotlib's animation player asks for
  Font Awesome 4 from maxcdn; the theme already ships Font Awesome, which draws the same icons);
* sets the theme's default colour mode (auto), whose absence is a console error;
* gives an image without alt text (a figure in a stored output) a description instead of its
  file path;
* lets the single-page build (``--builder singlehtml``, which the PDF is printed from) write every
  node the html build writes: sphinx-exercise registers singlehtml handlers of its own, after
  which Sphinx no longer falls back to the html ones for the other nodes (MyST-NB's folded
  cells, Jupyter Book's table-of-contents placeholders).
"""

import re
import shutil
from pathlib import Path

from docutils import nodes

STATIC = Path(__file__).resolve().parent.parent / "_static"
MATHJAX_ENTRY = "tex-chtml.js"
# Relative to the package's mathjax folder: what tex-chtml.js loads, at once or on demand.
MATHJAX_PARTS = [MATHJAX_ENTRY, "input/tex/extensions", "output/chtml/fonts", "ui", "a11y", "sre"]
_EXTERNAL_STYLESHEET = re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>\s*", re.IGNORECASE)


def mathjax_source():
    import importlib.util

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax for the site comes from sphinx-mathjax-offline: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def _configure(app, config):
    config.mathjax_path = "mathjax/" + MATHJAX_ENTRY
    config.html_static_path = list(config.html_static_path) + [str(STATIC)]
    config.html_favicon = str(STATIC / "favicon.svg")
    # Without a default colour mode the theme starts from "" and logs "Got invalid theme mode"
    # as a console error on a reader's first visit.
    # (pydata-sphinx-theme reads it from html_context).
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def _key(asset):
    attributes = getattr(asset, "attributes", {}) or {}
    # An inline script is registered once with filename None and once with '' (same body).
    return getattr(asset, "filename", str(asset)) or "", tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _once_each(app, pagename, templatename, context, doctree):
    for name in ("script_files", "css_files"):
        if name in context:
            seen, unique = set(), []
            for asset in context[name]:
                if _key(asset) not in seen:
                    seen.add(_key(asset))
                    unique.append(asset)
            context[name] = unique


def _section_title(node):
    while node is not None:
        if isinstance(node, nodes.section) and node.children and isinstance(node[0], nodes.title):
            return node[0].astext()
        node = node.parent
    return None


def _tidy_outputs(app, doctree, docname):
    for raw in list(doctree.findall(nodes.raw)):
        if "html" in raw.get("format", "").split():
            text = raw.astext()
            cleaned = _EXTERNAL_STYLESHEET.sub("", text)
            if cleaned != text:
                raw.children = [nodes.Text(cleaned)]
    for image in doctree.findall(nodes.image):
        alt = image.get("alt")
        if not alt or alt == image.get("uri") or "/" in alt and alt.endswith((".png", ".svg", ".jpg", ".gif")):
            title = _section_title(image)
            image["alt"] = f"Figure produced by the code above, in “{title}”" if title else "Figure produced by the code above"


def _singlehtml_writes_what_html_writes(app):
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    own = handlers.setdefault("singlehtml", {})
    for node, pair in handlers.get("html", {}).items():
        own.setdefault(node, pair)


def setup(app):
    app.connect("config-inited", _configure)
    app.connect("builder-inited", _singlehtml_writes_what_html_writes)
    app.connect("doctree-resolved", _tidy_outputs)
    app.connect("html-page-context", _once_each)
    app.connect("build-finished", _copy_mathjax)
    app.add_js_file("sidebar-toggles.js", defer="defer")
    app.add_js_file("print.js", defer="defer")
    app.add_css_file("site.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
