"""Colab today: every chapter, top to bottom, in a stand-in with the versions Google Colab runs now.

    make colab-today                       # every chapter (10-30 minutes on 2 CPU cores)
    python tests/colab_today.py notebooks/05_training_cifar10.ipynb   # some chapters

``tests/test_colab_standin.py`` (part of ``make test``) runs chapter 1 with the test machine's own
Python and torch. This is the same stand-in with Colab's versions (below, as of ``AS_OF``), which
the test machine does not have: a virtual environment is built once from PyPI (torch's CUDA wheels
and their dependencies, about 5 GB) and cached outside the repository, in
``~/.cache/vgg_book/colab-today/`` (``VGG_COLAB_TODAY_CACHE`` to move it). Each chapter then gets
a fresh hard-linked copy of it, as each Colab notebook gets a fresh runtime: the Colab set-up cell
installs vgg_lib from a ``git+file://`` copy of the working tree, a fake ``google.colab`` (with
``drive.mount``, tests/colab_stub) is imported at kernel start, the quick profile is chosen (no
GPU), the data is the offline sample (``VGG_CIFAR10_NPZ``), checkpoints and "Google Drive" are
fresh folders of this run. The notebooks in the repository are never rewritten: copies run in a
temporary folder, which is printed, with the executed copies and ``report.json``.

Fails (exit 1) when a chapter fails, or when the set-up cell replaced or upgraded a preinstalled
package. Python 3.13 is found with ``COLAB_TODAY_PYTHON``, else pyenv's newest 3.13, else
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

AS_OF = "2026-08"
COLAB_PYTHON = "3.13"
COLAB_TORCH = "2.11"
COLAB_TORCHVISION = "0.26"
# What a Colab runtime has preinstalled that the chapters or their execution need (torch and
# torchvision aside); vgg_lib's other requirements (torchinfo) are the set-up cell's to install.
PREINSTALLED = ("numpy", "matplotlib", "ipywidgets", "ipykernel", "nbclient", "nbformat", "tqdm",
                "pyyaml")

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("VGG_COLAB_TODAY_CACHE") or Path.home() / ".cache" / "vgg_book" / "colab-today")

PROBE = """import importlib.metadata, json, os, sys, vgg_lib
print("PROBE " + json.dumps({"python": sys.version.split()[0], "profile": os.environ.get("VGG_PROFILE"),
                             "vgg_lib": vgg_lib.__file__, "torch": importlib.metadata.version("torch"),
                             "torchvision": importlib.metadata.version("torchvision"),
                             "numpy": importlib.metadata.version("numpy")}))"""


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


def cached_environment(python):
    """The environment with Colab's versions, built once (a half-built one is never used)."""
    root = CACHE / f"python{COLAB_PYTHON}-torch{COLAB_TORCH}-torchvision{COLAB_TORCHVISION}"
    if (root / "READY").is_file():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building the Colab-today environment in {root} (once; torch's wheels are large)", flush=True)
    subprocess.run([python, "-m", "venv", str(partial)], check=True)
    pins = [f"torch=={COLAB_TORCH}.*", f"torchvision=={COLAB_TORCHVISION}.*", *PREINSTALLED]
    subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins], check=True)
    freeze = subprocess.run([str(partial / "bin" / "python"), "-m", "pip", "freeze"], check=True,
                            capture_output=True, text=True).stdout
    (partial / "READY").write_text(freeze)
    partial.rename(root)
    return root


def first_error(executed):
    for index, cell in enumerate(executed.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {str(output.get('evalue'))[:300]}"
    return None


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
    nbformat.write(nb, folder / chapter.name)
    (folder / "driver.py").write_text(DRIVER)
    (folder / "content").mkdir()
    executed_path = work / f"executed-{chapter.name}"
    start = time.perf_counter()
    try:
        result = subprocess.run([str(python), str(folder / "driver.py"), str(folder / chapter.name),
                                 str(executed_path), str(folder / "content")],
                                env=env, capture_output=True, text=True, timeout=1800)
        returncode, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired as error:
        returncode, stderr = "timeout", str(error)
    seconds = time.perf_counter() - start
    after = installed(site_packages)
    changed = {name: [before[name][0], (after.get(name) or ("removed",))[0]]
               for name in before if after.get(name) != before[name]}
    added = sorted(set(after) - set(before))
    executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else None
    probe = None
    if executed is not None:
        text = "".join(o.get("text", "") for o in executed.cells[-1].get("outputs", []) if o.output_type == "stream")
        probe = json.loads(text.split("PROBE ", 1)[1]) if "PROBE " in text else None
    error = (first_error(executed) if executed is not None else None) or (
        None if returncode == 0 else stderr.strip().splitlines()[-1][:300] if stderr.strip() else str(returncode))
    ok = returncode == 0 and not changed and probe is not None and probe["profile"] == "quick" and \
        Path(probe["vgg_lib"]).is_relative_to(site_packages)
    shutil.rmtree(env_root, ignore_errors=True)  # the executed copy stays
    return dict(chapter=chapter.name, ok=ok, seconds=round(seconds, 1), error=error, probe=probe,
                replaced_preinstalled=changed, installed_by_cell=added, stderr_tail=stderr[-3000:] if not ok else "")


def main(argv):
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from test_colab_standin import committed_copy
    from vgg_lib.teaching import colab

    chapters = [Path(a).resolve() for a in argv] or sorted((REPO / "notebooks").glob("*.ipynb"))
    cached = cached_environment(find_python())
    work = Path(tempfile.mkdtemp(prefix="colab-today-"))
    print(f"Colab today ({AS_OF}): Python {COLAB_PYTHON}, torch {COLAB_TORCH}, torchvision "
          f"{COLAB_TORCHVISION}; environment {cached}; work folder {work}", flush=True)
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
        print(("ok" if result["ok"] else "FAILED") + f" in {result['seconds']:.0f} s"
              + (f": {result['error']}" if result["error"] else "")
              + (f"; replaced preinstalled {result['replaced_preinstalled']}" if result["replaced_preinstalled"] else ""),
              flush=True)
    link = content / "drive"
    if link.is_symlink() and os.readlink(link).startswith(str(work)):
        link.unlink()
        if not content_existed and not any(content.iterdir()):
            content.rmdir()
    mounts = (work / "drive-mounts.jsonl").read_text().splitlines() if (work / "drive-mounts.jsonl").exists() else []
    report = dict(as_of=AS_OF, python=COLAB_PYTHON, torch=COLAB_TORCH, torchvision=COLAB_TORCHVISION,
                  environment=str(cached), drive_mounts=[json.loads(m) for m in mounts], chapters=results)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    probe = next((r["probe"] for r in results if r["probe"]), None)
    failed = [r["chapter"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
          + (f" (versions seen by the kernel: {probe})" if probe else "") + f"; report: {work / 'report.json'}")
    for r in results:
        if not r["ok"] and r["stderr_tail"]:
            print(f"--- {r['chapter']}\n{r['stderr_tail']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
