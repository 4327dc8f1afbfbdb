"""A stand-in for Google Colab: does a chapter open and run there with only the set-up cell?

A fresh virtual environment gets exactly what a Colab runtime has preinstalled that matters here
(torch, torchvision, matplotlib, ipywidgets) plus what executing a notebook needs (ipykernel,
nbclient), each with its dependencies. A stub ``google.colab`` module, imported at kernel start
as in Colab, makes the set-up cell take its Colab branch. The cell then installs vgg_lib from a
``git+file://`` URL: a throw-away git repository holding a copy of the working tree as it is on
disk (committed files or not). Then chapter 1 runs from top to bottom.

The environment is populated by hard-linking the files each installed distribution lists in its
RECORD (what pip itself would have written) instead of running ``pip install torch``: with the
CUDA wheels that took 6.5 minutes on this 2-core machine, against ~15 s for the links. pip sees a
normal installation (``pip check`` must pass) and it is safe: pip deletes or renames a file
before writing a new one, so the originals are never written through a link.

Fails if the install replaced or upgraded any preinstalled package (versions and RECORD inodes
are compared before and after), if the chapter needs a module the cell did not install, or if
any chapter imports a module that would be missing in Colab.
"""

import json
import os
import shutil
import subprocess
import time
import tomllib
import venv
from importlib.metadata import distribution
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from vgg_lib.teaching import code_cells, colab, runtimes

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / "notebooks" / "01_building_vgg.ipynb"
COLAB_HAS = ("torch", "torchvision", "matplotlib", "ipywidgets")
TO_EXECUTE_NOTEBOOKS = ("ipykernel", "nbclient")
PASS_THROUGH = ("VGG_CIFAR10_NPZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy",
                "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "LANG", "LC_ALL")

DRIVER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
try:
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": sys.argv[3]}}).execute()
finally:
    nbformat.write(nb, sys.argv[2])
"""

PROBE = """import importlib.metadata, json, os, vgg_lib
print("PROBE " + json.dumps({"profile": os.environ.get("VGG_PROFILE"), "vgg_lib": vgg_lib.__file__,
                             "torch": importlib.metadata.version("torch")}))"""


def closure(names):
    """Installed distributions needed by ``names`` (requirements, extras and markers followed)."""
    found, stack = {}, [(name, ()) for name in names]
    while stack:
        name, extras = stack.pop()
        key = canonicalize_name(name)
        if (key, extras) in found:
            continue
        dist = distribution(key)
        found[(key, extras)] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))
            if wanted:
                stack.append((requirement.name, tuple(sorted(requirement.extras))))
    return {canonicalize_name(dist.metadata["Name"]): dist for dist in found.values()}


def replicate(dists, env_root, site_packages):
    """Hard-link (or copy, across file systems) every file of ``dists`` into a virtual env."""
    for dist in dists.values():
        if not dist.files:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD; reinstall it with pip.")
        for file in dist.files:
            source = Path(dist.locate_file(file))
            target = Path(os.path.normpath(site_packages / file))
            inside = target.relative_to(env_root)  # raises for a path leaving the environment
            if inside.parts[0] == "bin" or not source.is_file() or target.exists():
                continue  # scripts would carry the system interpreter in their first line
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def installed(site_packages):
    """{name: (version, inode of RECORD)} for the distributions in ``site_packages``."""
    state = {}
    for info in site_packages.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines()
        fields = dict(line.split(": ", 1) for line in metadata[:20] if ": " in line)
        record = info / "RECORD"
        state[canonicalize_name(fields["Name"])] = (fields["Version"], record.stat().st_ino if record.exists() else None)
    return state


STUB = Path(__file__).resolve().parent / "colab_stub"  # google.colab, with drive.mount


def write_colab_stub(stub, startup):
    """The fake ``google.colab`` (``tests/colab_stub``, with ``drive``) copied to ``stub`` and
    imported at kernel start from the IPython startup folder ``startup``, as in Colab."""
    shutil.copytree(STUB, stub, ignore=shutil.ignore_patterns("__pycache__"))
    startup.mkdir(parents=True)
    (startup / "00-google-colab.py").write_text(f"import sys\nsys.path.append({str(stub)!r})\nimport google.colab\n")


def run(command, env, timeout=600, cwd=None):
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def committed_copy(destination, branch):
    """A git repository at ``destination`` whose ``branch`` holds the working tree as on disk."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True)
    files = [f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else \
        ["pyproject.toml", *(str(p.relative_to(REPO)) for p in (REPO / "vgg_lib").rglob("*.py"))]
    for name in files:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    git = ["git", "-C", str(destination), "-c", "user.name=stand-in", "-c", "user.email=stand-in@example.invalid",
           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=" + branch]
    for step in (["init", "-q"], ["checkout", "-q", "-B", branch], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + step, check=True, capture_output=True)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("colab")
    times = {}
    start = time.perf_counter()
    env_root = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_root)
    python = env_root / "bin" / "python"
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             None).strip())
    replicate(closure(COLAB_HAS + TO_EXECUTE_NOTEBOOKS), env_root, site_packages)
    times["environment"] = time.perf_counter() - start

    home = tmp / "home"
    stub = tmp / "colab_stub"
    write_colab_stub(stub, home / ".ipython" / "profile_default" / "startup")
    env = {"PATH": os.pathsep.join([str(env_root / "bin"), str(Path(shutil.which("git")).parent), "/usr/bin", "/bin"]),
           "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "IPYTHONDIR": str(home / ".ipython"),
           "MPLCONFIGDIR": str(home / "matplotlib"), "JUPYTER_CONFIG_DIR": str(home / "jupyter"),
           "JUPYTER_DATA_DIR": str(home / "jupyter-data"), "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
           "VGG_DATA_DIR": str(tmp / "data"), "VGG_CHECKPOINT_DIR": str(tmp / "checkpoints"),
           "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
           **{k: v for k, v in os.environ.items() if k in PASS_THROUGH or k.startswith("PIP_")}}
    pip_check = run([str(python), "-m", "pip", "check"], env)
    before = installed(site_packages)

    url = colab.install_url(REPO)
    branch = url.rsplit("@", 1)[1]
    repository = tmp / "repository"
    committed_copy(repository, branch)
    local_url = f"git+file://localhost{repository}@{branch}"  # pip 23's parser wants a host in file URLs

    nb = nbformat.read(CHAPTER, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    setup.source = colab.setup_cell_source(local_url)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    nbformat.write(nb, tmp / "chapter.ipynb")
    (tmp / "driver.py").write_text(DRIVER)
    (tmp / "work").mkdir()
    start = time.perf_counter()
    result = subprocess.run([str(python), str(tmp / "driver.py"), str(tmp / "chapter.ipynb"),
                             str(tmp / "executed.ipynb"), str(tmp / "work")],
                            env=env, capture_output=True, text=True, timeout=900)
    times["chapter"] = time.perf_counter() - start
    executed = nbformat.read(tmp / "executed.ipynb", as_version=4) if (tmp / "executed.ipynb").exists() else None
    if executed is not None:
        setup_nb = nbformat.v4.new_notebook(cells=[next(c for c in executed.cells if c.cell_type == "code")])
        times["set-up cell"] = runtimes.measured_seconds(setup_nb) or float("nan")
    print("\nColab stand-in: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in times.items()))
    return dict(python=python, env=env, site_packages=site_packages, before=before, after=installed(site_packages),
                result=result, executed=executed, pip_check=pip_check, url=url)


def _text(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def test_chapter_runs_top_to_bottom_after_the_setup_cell(standin):
    result = standin["result"]
    assert result.returncode == 0, f"chapter failed in the Colab stand-in:\n{result.stderr[-4000:]}"
    cells = [c for c in standin["executed"].cells if c.cell_type == "code"]
    assert "Runtime → Change runtime type → GPU" in _text(cells[0])  # the Colab branch ran, without a GPU
    probe = json.loads(_text(cells[-1]).split("PROBE ", 1)[1])
    assert probe["profile"] == "quick"
    assert Path(probe["vgg_lib"]).is_relative_to(standin["site_packages"]), probe  # installed, not the checkout


def test_install_left_every_preinstalled_package_alone(standin):
    before, after = standin["before"], standin["after"]
    assert "torch" in before and "vgg-lib" not in before
    changed = {name: (before[name], after.get(name)) for name in before if after.get(name) != before[name]}
    assert not changed, f"the set-up cell reinstalled or upgraded preinstalled packages: {changed}"
    requirements = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    allowed = {"vgg-lib"} | {canonicalize_name(Requirement(r).name) for r in requirements}
    added = set(after) - set(before)
    assert "vgg-lib" in added
    assert added <= allowed, f"installed more than vgg_lib and its missing requirements: {added - allowed}"


def test_the_colab_environment_is_consistent(standin):
    assert "No broken requirements found" in standin["pip_check"]


def test_every_chapter_imports_only_what_colab_has_or_the_cell_installs(standin):
    needed = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                tree = code_cells.parse(cell.source, f"{path.name} cell {index}")
                for module in code_cells.third_party(code_cells.imported_modules(tree)):
                    needed.setdefault(module, f"{path.name} cell {index}")
    needed.pop("google", None)  # google.colab: only imported inside Colab
    probe = "import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))"
    missing = json.loads(run([str(standin["python"]), "-c", probe, *sorted(needed)], standin["env"]))
    assert not missing, "modules a Colab runtime would lack: " + ", ".join(f"{m} ({needed[m]})" for m in missing)


def test_every_vgg_lib_module_imports_in_colab(standin):
    probe = ("import importlib, pkgutil, vgg_lib\n"
             "for m in pkgutil.walk_packages(vgg_lib.__path__, 'vgg_lib.'):\n"
             "    if not m.name.startswith('vgg_lib.teaching'): importlib.import_module(m.name)\n"
             "print('ok')")
    assert run([str(standin["python"]), "-c", probe], standin["env"]).strip() == "ok"
