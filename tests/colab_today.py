"""Colab today: every chapter, top to bottom, in a stand-in with the versions Google Colab runs now.

    make colab-today                       # every chapter of _toc.yml (10-30 minutes on 2 quiet cores)
    .venv/bin/python tests/colab_today.py notebooks/05_training_cifar10.ipynb   # some chapters

``tests/test_colab_standin.py`` (part of ``make test``) runs chapter 1 with the test machine's own
Python and torch. This is the same stand-in with Colab's versions (``COLAB`` below: Colab's own
snapshot of ``AS_OF``), which the test machine does not have: a virtual environment with exactly
those versions is built once from PyPI (torch's CUDA wheels
and their dependencies, about 5 GB) and cached outside the repository, in
``~/.cache/vgg_book/colab-today/`` (``VGG_COLAB_TODAY_CACHE`` to move it). Each chapter then gets
a fresh hard-linked copy of it, as each Colab notebook gets a fresh runtime: the Colab set-up cell
installs vgg_lib from a ``git+file://`` copy of the working tree, a fake ``google.colab`` (with
``drive.mount``, tests/colab_stub) is imported at kernel start, the quick profile is chosen (no
GPU), the data is the offline sample (``VGG_CIFAR10_NPZ``), checkpoints and "Google Drive" are
fresh folders of this run. The notebooks in the repository are never rewritten: copies run in a
temporary folder, which is printed, with the executed copies and ``report.json``.

After each chapter, in its kernel, every control of every live widget it made (chapter 2's
explorer) is moved as a reader would, which runs its callbacks under Colab's ipywidgets 7.7.1; each
must redraw the explorer's picture. pip is also asked whether ``pip install "vgg_lib[widgets]"``
would change anything Colab preinstalled (it must not). The chapters' times are printed as a
Markdown table at the end, to paste into a report.

Fails (exit 1) when a chapter fails, when the set-up cell replaced or upgraded a preinstalled
package, when an explorer's control does not redraw it, or when the widgets extra would upgrade
Colab's ipywidgets. Python 3.13 is found with ``COLAB_TODAY_PYTHON``, else pyenv's newest 3.13, else
``python3.13`` on the PATH.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Google Colab's runtime: the one table that the stand-in installs and that README.md's table of
# tested versions and pyproject.toml's lower bounds are checked against (tests/test_versions.py).
# Source: github.com/googlecolab/backend-info, pip-freeze.txt and os-info.txt of its snapshot of
# 2026-08-19 ("Upgrade to Python 3.13", commit a724079; live in Colab since 2026-08-25). Only what
# a chapter, its widgets or its execution touches; the set-up cell installs the rest (torchinfo).
SOURCE = "googlecolab/backend-info, snapshot 2026-08-19 (commit a724079)"
AS_OF = "2026-08-19"
COLAB = {
    "python": "3.13",  # 3.13.15 there: any 3.13 here
    # Colab's builds are 2.11.0+cpu (CPU runtime) and +cu128 (GPU runtime), both from
    # download.pytorch.org; the stand-in has no GPU and takes PyPI's build of the same release.
    "torch": "2.11.0",
    "torchvision": "0.26.0",
    "numpy": "2.1.3",
    "matplotlib": "3.10.0",
    "ipywidgets": "7.7.1",
    "ipykernel": "6.17.1",
    # the kernel and widget machinery behind those two, and the tools the set-up cell runs
    "ipython": "7.34.0",
    "jupyter-client": "7.4.9",
    "traitlets": "5.7.1",
    "tornado": "6.5.7",
    "pyzmq": "26.2.1",
    "widgetsnbextension": "3.6.10",
    "jupyterlab-widgets": "3.0.16",
    "notebook": "6.5.7",
    "nbclient": "0.10.4",
    "nbformat": "5.11.1",
    "tqdm": "4.67.3",
    "pyyaml": "6.0.3",
    "pillow": "11.3.0",
    "pip": "24.1.2",
    "setuptools": "75.2.0",
}
# The columns of README.md's table of tested versions.
HEADLINE = ("python", "torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "ipykernel")
COLAB_PYTHON = COLAB["python"]

# Colab has no time limit per cell; the stand-in stops a chapter after an hour (a busy 2-core
# machine took 11 minutes for chapter 5's training cell, timed out at test_colab_standin's 600 s).
CHAPTER_TIMEOUT_S = 3600

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("VGG_COLAB_TODAY_CACHE") or Path.home() / ".cache" / "vgg_book" / "colab-today")

PROBE = """import importlib.metadata, json, os, sys, vgg_lib
print("PROBE " + json.dumps({"python": sys.version.split()[0], "profile": os.environ.get("VGG_PROFILE"),
                             "vgg_lib": vgg_lib.__file__, "torch": importlib.metadata.version("torch"),
                             "torchvision": importlib.metadata.version("torchvision"),
                             "numpy": importlib.metadata.version("numpy"),
                             "ipywidgets": importlib.metadata.version("ipywidgets")}))"""

# Run after a chapter, in its kernel: every control of every live widget the chapter made (its
# explorers) is moved to another value, as a reader would, which runs the chapter's callbacks under
# Colab's ipywidgets; each must redraw a picture of the explorer. An exception fails the cell.
WIDGET_PROBE = """import json, sys
report = {"ipywidgets": None, "widgets": 0, "controls": []}
if "ipywidgets" in sys.modules:
    import ipywidgets
    registry = getattr(ipywidgets.Widget, "widgets", None)  # ipywidgets 7
    if registry is None:
        from ipywidgets.widgets.widget import _instances as registry  # ipywidgets 8
    live = list(registry.values())
    images = [w for w in live if isinstance(w, ipywidgets.Image)]
    report.update(ipywidgets=ipywidgets.__version__, widgets=len(live))
    for control in live:
        if isinstance(control, ipywidgets.widgets.widget_selection._Selection):
            choice = next(v for v in control._options_values if v != control.value)
        elif isinstance(control, (ipywidgets.IntSlider, ipywidgets.FloatSlider)):
            choice = control.max if control.value != control.max else control.min
        elif isinstance(control, (ipywidgets.Checkbox, ipywidgets.ToggleButton)):
            choice = not control.value
        else:
            continue
        before = [image.value for image in images]
        control.value = choice
        report["controls"].append({"control": f"{type(control).__name__} {control.description!r}",
                                   "set to": repr(choice), "redrew": [i.value for i in images] != before})
print("WIDGETS " + json.dumps(report))"""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def find_python():
    """A Python ``COLAB_PYTHON`` to build the environment with."""
    candidates = [os.environ.get("COLAB_TODAY_PYTHON")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p / "bin" / "python3") for p in sorted(
        pyenv.glob(f"{COLAB_PYTHON}.*"), key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        reverse=True)]
    candidates.append(shutil.which(f"python{COLAB_PYTHON}"))
    for candidate in filter(None, candidates):
        version = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip() == COLAB_PYTHON:
            return candidate
    sys.exit(f"colab-today needs Python {COLAB_PYTHON} (Colab's, as of {AS_OF}): set COLAB_TODAY_PYTHON "
             f"to its interpreter, or install it (pyenv install {COLAB_PYTHON}).")


def pins():
    """``name==version`` for every package of ``COLAB`` (Python aside)."""
    return [f"{name}=={version}" for name, version in COLAB.items() if name != "python"]


def cached_environment(python):
    """The environment with Colab's versions, built once per table (a half-built one is never used)."""
    import hashlib

    key = hashlib.sha256(json.dumps(COLAB, sort_keys=True).encode()).hexdigest()[:10]
    root = CACHE / f"python{COLAB_PYTHON}-colab-{AS_OF}-{key}"
    if (root / "READY").is_file():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building the Colab-today environment in {root} (once; torch's wheels are large)", flush=True)
    subprocess.run([python, "-m", "venv", str(partial)], check=True)
    pip = [str(partial / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", f"pip=={COLAB['pip']}"], check=True)  # Colab's pip runs the cell
    subprocess.run([*pip, "install", "--quiet", *pins()], check=True)
    subprocess.run([*pip, "check"], check=True)
    freeze = subprocess.run([*pip, "freeze", "--all"], check=True, capture_output=True, text=True).stdout
    versions = {canonical(line.split("==")[0]): line.split("==")[1] for line in freeze.splitlines() if "==" in line}
    wrong = {name: versions.get(canonical(name)) for name, version in COLAB.items()
             if name != "python" and versions.get(canonical(name)) != version}
    if wrong:
        sys.exit(f"the Colab-today environment in {partial} did not get Colab's versions: {wrong}")
    (partial / "READY").write_text(freeze)
    partial.rename(root)
    return root


def canonical(name):
    return name.lower().replace("_", "-").replace(".", "-")


def first_error(executed):
    for index, cell in enumerate(executed.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {str(output.get('evalue'))[:300]}"
    return None


def _printed(executed, index, prefix):
    """The JSON that cell ``index`` of the executed notebook printed after ``prefix``, or None."""
    if executed is None:
        return None
    text = "".join(o.get("text", "") for o in executed.cells[index].get("outputs", []) if o.output_type == "stream")
    return json.loads(text.split(prefix, 1)[1].splitlines()[0]) if prefix in text else None


def run_chapter(chapter, cached, work, url, shared):
    """Execute a copy of ``chapter`` in a fresh copy of the environment; a dict of what happened."""
    import nbformat
    from test_colab_standin import DRIVER, PASS_THROUGH, installed, write_colab_stub
    from vgg_lib.teaching import colab

    folder = work / chapter.stem
    env_root = folder / "venv"
    folder.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(cached), str(env_root)], check=True)  # hard links: seconds
    python = env_root / "bin" / "python"
    site_packages = env_root / "lib" / f"python{COLAB_PYTHON}" / "site-packages"
    home = folder / "home"
    write_colab_stub(folder / "colab_stub", home / ".ipython" / "profile_default" / "startup")
    env = {"PATH": os.pathsep.join([str(env_root / "bin"), str(Path(shutil.which("git")).parent), "/usr/bin", "/bin"]),
           "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "IPYTHONDIR": str(home / ".ipython"),
           "MPLCONFIGDIR": str(home / "matplotlib"), "JUPYTER_CONFIG_DIR": str(home / "jupyter"),
           "JUPYTER_DATA_DIR": str(home / "jupyter-data"), "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
           "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
           **{k: v for k, v in os.environ.items() if k in PASS_THROUGH or k.startswith("PIP_")},
           **shared}
    before = installed(site_packages)
    nb = nbformat.read(chapter, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    setup.source = colab.setup_cell_source(url)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    nb.cells.append(nbformat.v4.new_code_cell(WIDGET_PROBE))
    nbformat.write(nb, folder / chapter.name)
    assert "timeout=600" in DRIVER, "test_colab_standin's driver changed: update colab_today"
    (folder / "driver.py").write_text(DRIVER.replace("timeout=600", f"timeout={CHAPTER_TIMEOUT_S}"))
    (folder / "content").mkdir()
    executed_path = work / f"executed-{chapter.name}"
    start = time.perf_counter()
    try:
        result = subprocess.run([str(python), str(folder / "driver.py"), str(folder / chapter.name),
                                 str(executed_path), str(folder / "content")],
                                env=env, capture_output=True, text=True, timeout=CHAPTER_TIMEOUT_S)
        returncode, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired:  # the kernel, orphaned, stops itself (ipykernel's parent poller)
        returncode, stderr = "timeout", f"stopped at the stand-in's limit of {CHAPTER_TIMEOUT_S} s a chapter"
    seconds = time.perf_counter() - start
    after = installed(site_packages)
    changed = {name: [before[name][0], (after.get(name) or ("removed",))[0]]
               for name in before if after.get(name) != before[name]}
    added = sorted(set(after) - set(before))
    executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else None
    probe = _printed(executed, -2, "PROBE ")
    widgets = _printed(executed, -1, "WIDGETS ")
    if widgets is not None:
        widgets["views shown"] = sum(WIDGET_VIEW in output.get("data", {}) for cell in executed.cells[:-2]
                                     for output in cell.get("outputs", []))
    error = (first_error(executed) if executed is not None else None) or (
        None if returncode == 0 else stderr.strip().splitlines()[-1][:300] if stderr.strip() else str(returncode))
    explorers_work = widgets is not None and all(c["redrew"] for c in widgets["controls"]) and (
        not widgets["controls"] or (widgets["ipywidgets"] == COLAB["ipywidgets"] and widgets["views shown"] > 0))
    ok = returncode == 0 and not changed and probe is not None and probe["profile"] == "quick" and \
        Path(probe["vgg_lib"]).is_relative_to(site_packages) and explorers_work
    shutil.rmtree(env_root, ignore_errors=True)  # the executed copy stays
    return dict(chapter=chapter.name, ok=ok, seconds=round(seconds, 1), error=error, probe=probe, widgets=widgets,
                replaced_preinstalled=changed, installed_by_cell=added, stderr_tail=stderr[-3000:] if not ok else "")


def widgets_extra_keeps_colabs_ipywidgets(cached, work, url):
    """Would ``pip install "vgg_lib[widgets]"``, pinning torch as the set-up cell does, change
    anything Colab preinstalled? Asked of pip (--dry-run --report) in a fresh copy of the env."""
    env_root = work / "widgets-extra-venv"
    subprocess.run(["cp", "-al", str(cached), str(env_root)], check=True)
    try:
        keep = [f"{name}=={COLAB[name]}" for name in ("torch", "torchvision")]
        result = subprocess.run([str(env_root / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
                                 "--report", "-", f"vgg_lib[widgets] @ {url}", *keep],
                                capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(env_root, ignore_errors=True)
    if result.returncode != 0:
        return dict(ok=False, would_install=None, error=result.stderr[-2000:])
    plan = json.loads(result.stdout)
    would = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in plan["install"]}
    preinstalled = {canonical(name) for name in COLAB}
    return dict(ok=not (set(would) & preinstalled), would_install=would)


def times_table(results):
    """The per-chapter times as a Markdown table, to paste into a report."""
    lines = [f"Colab stand-in ({SOURCE}; " + ", ".join(f"{n} {COLAB[n]}" for n in HEADLINE)
             + f"), {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}:", "",
             "| chapter | result | seconds |", "|---|---|---:|"]
    lines += [f"| {r['chapter']} | {'ok' if r['ok'] else 'FAILED'} | {r['seconds']:.0f} |" for r in results]
    lines.append(f"| all {len(results)} | {sum(r['ok'] for r in results)} ok | {sum(r['seconds'] for r in results):.0f} |")
    return "\n".join(lines)


def main(argv):
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from test_colab_standin import committed_copy
    from vgg_lib.teaching import colab

    from vgg_lib.teaching.notebooks import toc_notebooks

    chapters = [Path(a).resolve() for a in argv] or [Path(p).resolve() for p in toc_notebooks(REPO)]
    cached = cached_environment(find_python())
    work = Path(tempfile.mkdtemp(prefix="colab-today-"))
    print(f"Colab today ({SOURCE}): " + ", ".join(f"{name} {COLAB[name]}" for name in HEADLINE)
          + f"; environment {cached}; work folder {work}", flush=True)
    branch = colab.install_url(REPO).rsplit("@", 1)[1]
    committed_copy(work / "repository", branch)
    url = f"git+file://localhost{work / 'repository'}@{branch}"
    sample = os.environ.get("VGG_CIFAR10_NPZ") or str((REPO.parent / "shared" / "data" / "cifar10-mini.npz").resolve())
    shared = {"VGG_CIFAR10_NPZ": sample, "VGG_DATA_DIR": str(work / "data"),
              "VGG_CHECKPOINT_DIR": str(work / "checkpoints"),  # fresh: no run resumes an old one
              "COLAB_STANDIN_DRIVE": str(work / "google-drive"),  # drive.mount links /content/drive here
              "COLAB_STANDIN_DRIVE_LOG": str(work / "drive-mounts.jsonl")}
    content = Path("/content")  # Colab's folder: drive.mount("/content/drive") links it to this run's Drive
    content_existed = content.exists()
    results = []
    for chapter in chapters:
        print(f"  {chapter.name} ...", end=" ", flush=True)
        result = run_chapter(chapter, cached, work, url, shared)
        results.append(result)
        controls = (result["widgets"] or {}).get("controls", [])
        print(("ok" if result["ok"] else "FAILED") + f" in {result['seconds']:.0f} s"
              + (f"; {sum(c['redrew'] for c in controls)}/{len(controls)} explorer controls redrew under "
                 f"ipywidgets {result['widgets']['ipywidgets']}" if controls else "")
              + (f": {result['error']}" if result["error"] else "")
              + (f"; replaced preinstalled {result['replaced_preinstalled']}" if result["replaced_preinstalled"] else ""),
              flush=True)
    link = content / "drive"
    if link.is_symlink() and os.readlink(link).startswith(str(work)):
        link.unlink()
        if not content_existed and not any(content.iterdir()):
            content.rmdir()
    extra = widgets_extra_keeps_colabs_ipywidgets(cached, work, url)
    print(("ok" if extra["ok"] else "FAILED") + f": pip install 'vgg_lib[widgets]' would install "
          f"{extra['would_install'] or 'nothing new'} (Colab's ipywidgets {COLAB['ipywidgets']} kept: {extra['ok']})")
    mounts = (work / "drive-mounts.jsonl").read_text().splitlines() if (work / "drive-mounts.jsonl").exists() else []
    report = dict(source=SOURCE, as_of=AS_OF, colab=COLAB, environment=str(cached),
                  drive_mounts=[json.loads(m) for m in mounts], chapters=results, widgets_extra=extra)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    probe = next((r["probe"] for r in results if r["probe"]), None)
    failed = [r["chapter"] for r in results if not r["ok"]] + ([] if extra["ok"] else ["widgets extra"])
    print(times_table(results))
    print(f"{len(results) + 1 - len(failed)} passed, {len(failed)} failed"
          + (f" (versions seen by the kernel: {probe})" if probe else "") + f"; report: {work / 'report.json'}")
    for r in results:
        if not r["ok"] and r["stderr_tail"]:
            print(f"--- {r['chapter']}\n{r['stderr_tail']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
