"""The attacks of issue #27, section 1, in every sandbox this machine offers.

One grading run per sandbox, as a separate process (one attack kills the grader), of three
notebooks: an attacker that tries each attack in a cell of its own and prints what it managed, a
victim graded after it, and a notebook that kills the grader. Canary files live in this test's
own temporary folders, network traffic goes to a listener on 127.0.0.1 only, and every process
an attack leaves is found by a marker in its command line and killed by the test. In the bwrap
and user sandboxes every attack must fail; without a sandbox (``--sandbox none``, which the
instructor accepts knowingly) the test records which succeed, and checks what holds even there:
the grader never writes through a link a notebook planted, never follows one to read answers,
and finishes an interrupted report on the next run. ``test_the_table`` prints the verdicts.
Sandboxes this machine cannot offer are skipped with the reason (VGG_REQUIRE_SANDBOXES: fail).
"""

import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import vgg_lib

MARKER = "vgg-grade-attack-"
SETUP = """from vgg_lib.exercises import Exercise, check, register
register(Exercise(id="test/a-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."))"""
GRADER = """import sys
from vgg_lib.exercises import Exercise, register
register(Exercise(id="test/a-count", expected=lambda: 6 * 7, kind="integer", hint="Multiply."))
from vgg_lib.teaching import grade
sys.exit(grade.main(sys.argv[1:]))"""
ATTACKS = ("planted links", "/proc snooping", "reading the solutions", "copying another student's answers",
           "network to 127.0.0.1", "writing outside the scratch folder", "writing into /tmp", "writing into vgg_lib",
           "leaving a 100 MB file", "a daemon outliving the grader", "killing the grader")
_META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _notebook(*cells):
    return new_notebook(cells=[new_code_cell(SETUP)] + [new_code_cell(c) for c in cells], metadata=_META)


def _attacker(paths, port, token):
    """Each cell tries one attack and prints "VERDICT <attack>: <what it managed>"."""
    p = {key: str(value) for key, value in paths.items()}
    return _notebook(
        'check("test/a-count", 41)',
        # Links where the runner once wrote its outcome and progress, and a results file pointing
        # to a forged answer: the grader must neither write through them nor read through them.
        f"""import os
box = os.path.dirname(os.getcwd())
done = []
for name, target in (("outcome.json", {p['canary']!r}), ("progress", {p['canary']!r}),
                     ("executed.ipynb", {p['canary']!r}), ("results.jsonl", {p['forged']!r})):
    try:
        if os.path.lexists(os.path.join(box, name)):
            os.remove(os.path.join(box, name))
        os.symlink(target, os.path.join(box, name))
        done.append(name)
    except OSError as error:
        pass
print("VERDICT planted links:", done)""",
        # The grader (its command line names vgg_lib.teaching's grade), its environment and folder.
        """import os
grader = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if b"vgg_lib.teaching import grade" not in open("/proc/" + pid + "/cmdline", "rb").read():
            continue
    except OSError:
        continue
    grader[pid] = ["cmdline"]
    for part, read in (("environ", lambda: open("/proc/" + pid + "/environ", "rb").read()),
                       ("cwd", lambda: os.readlink("/proc/" + pid + "/cwd"))):
        try:
            read()
            grader[pid].append(part)
        except OSError:
            pass
print("VERDICT /proc snooping:", sorted(grader.values()))""",
        f"""try:
    print("VERDICT reading the solutions:", len(open({p['solutions']!r}).read()), "characters")
except OSError as error:
    print("VERDICT reading the solutions: blocked", type(error).__name__)""",
        f"""try:
    print("VERDICT copying another student's answers:", len(open({p['victim']!r}).read()), "characters")
except OSError as error:
    print("VERDICT copying another student's answers: blocked", type(error).__name__)""",
        f"""import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"{token}")
    print("VERDICT network to 127.0.0.1: connected")
except OSError as error:
    print("VERDICT network to 127.0.0.1: blocked", type(error).__name__)""",
        f"""import os, vgg_lib
def attempt(path):
    try:
        open(path, "w").write("pwned")
        return "wrote " + path
    except OSError as error:
        return "blocked " + type(error).__name__
print("VERDICT writing outside the scratch folder:", attempt({p['outside']!r} + "/{token}"))
print("VERDICT writing into /tmp:", attempt("/tmp/{MARKER}{token}"))
print("VERDICT writing into vgg_lib:", " and ".join(attempt(os.path.join(folder, "{MARKER}{token}.py")) for folder in
      (os.path.dirname(vgg_lib.__file__), {p['package']!r})))""",
        f"""left = []
for path in ("big", "/tmp/{MARKER}{token}-big", "/dev/shm/{MARKER}{token}-big"):
    try:
        with open(path, "wb") as handle:
            handle.write(b"0" * (100 << 20))
        left.append(path)
    except OSError:
        pass
print("VERDICT leaving a 100 MB file: written", left)""",
        f"""import subprocess, sys
daemon = '''import os, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): sys.exit(0)
if "VGG_GRADE_RUN" in os.environ:  # shed the job's token, as the attack of issue #27 did
    os.execve(sys.executable, [sys.executable] + sys.argv, {{}})
time.sleep(8)  # the grader has finished by then
for path in {[p['report'], p['csv']]!r}:
    try:
        open(path, "a").write("pwned by a daemon\\\\n")
    except OSError:
        pass
time.sleep(600)
# {MARKER}{token}'''
subprocess.Popen([sys.executable, "-c", daemon, "{MARKER}{token}"])
print("VERDICT a daemon outliving the grader: started")""",
    )


def _killer(flag):
    """Kills the grader (the runner's parent, which this notebook may find through /proc), once."""
    return _notebook('check("test/a-count", 42)', f"""import os, signal
if os.path.exists({str(flag)!r}):
    print("VERDICT killing the grader: not again")
else:
    try:
        runner = os.getppid()
        grader = int(open(f"/proc/{{runner}}/stat").read().rsplit(")", 1)[1].split()[1])
        if grader <= 1:
            raise ValueError("no grader in sight")
        open({str(flag)!r}, "w").close()
        os.kill(grader, signal.SIGKILL)
        print("VERDICT killing the grader: sent SIGKILL to", grader)
    except (OSError, ValueError) as error:
        print("VERDICT killing the grader: blocked", type(error).__name__)""", 'check("test/a-count", 42)')


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it gets."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.received = self.server.getsockname()[1], []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.received.append(connection.recv(100))
            connection.close()


def _processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def _grade(folder, out, reference, mode):
    command = [sys.executable, "-c", GRADER, str(folder), "--report", str(out / "report.md"), "--csv",
               str(out / "scores.csv"), "--timeout", "120", "--exercises-from", str(reference),
               "--executed", str(out / "executed"), "--sandbox", mode]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as grader:
        try:
            stdout, stderr = grader.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            grader.kill()
            raise
    done = subprocess.CompletedProcess(command, grader.returncode, stdout, stderr)
    done.pid = grader.pid   # the grader names its scratch folder /tmp/vgg-grade-<pid>-XXXX
    return done


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, request):
    """{mode: what each attack did} for the sandboxes this machine offers (filled by the tests)."""
    return {}


def _run_attacks(tmp_path, mode):
    token = f"{mode}-{os.getpid()}-{int(time.time())}"
    folder, out, outside = tmp_path / "submissions", tmp_path / "out", tmp_path / "outside"
    for made in (folder, out, outside):
        made.mkdir()
    os.chmod(outside, 0o755)
    canary, forged = tmp_path / "canary", tmp_path / "forged"
    canary.write_text("canary\n")
    forged.write_text('{"exercise": "test/a-count", "answer": 42}\n')
    reference = tmp_path / "homework.ipynb"
    nbformat.write(_notebook('answer = None\ncheck("test/a-count", answer)'), reference)
    package = Path(vgg_lib.__file__).resolve().parent
    paths = {"canary": canary, "forged": forged, "submissions": folder, "out": out, "outside": outside,
             "victim": folder / "v_victim.ipynb", "report": out / "report.md", "csv": out / "scores.csv",
             "solutions": package.parent / "notebooks" / "01_building_vgg.ipynb",
             # Never the real package without a sandbox: there the write would succeed, in the repository.
             "package": package if mode != "none" else tmp_path}
    listener = Listener()
    nbformat.write(_attacker(paths, listener.port, token), folder / "a_attacker.ipynb")
    nbformat.write(_notebook('check("test/a-count", 42)'), paths["victim"])
    nbformat.write(_killer(tmp_path / "killed-once"), folder / "z_killer.ipynb")
    victim_bytes = paths["victim"].read_bytes()
    first = _grade(folder, out, reference, mode)
    grader_killed = first.returncode == -signal.SIGKILL
    second = _grade(folder, out, reference, mode) if grader_killed else None
    if _processes_with(MARKER + token):  # a daemon outlived its job: let it try to write (8 s after it began)
        time.sleep(10)
    report = (out / "report.md").read_text(encoding="utf-8")
    rows = list(csv.DictReader(open(out / "scores.csv", encoding="utf-8")))
    executed = nbformat.read(out / "executed" / "a_attacker.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    verdicts = {line.split(":", 1)[0][len("VERDICT "):]: line.split(":", 1)[1].strip()
                for line in printed.splitlines() if line.startswith("VERDICT ")}
    killer = nbformat.read(out / "executed" / "z_killer.ipynb", as_version=4)
    verdicts["killing the grader"] = next(line.split(":", 1)[1].strip() for c in killer.cells for o in c.get("outputs", [])
                                          for line in o.get("text", "").splitlines() if line.startswith("VERDICT"))
    escaped = _processes_with(MARKER + token)
    for pid in escaped:  # without a sandbox the daemon lives on: the test cleans up after itself
        os.kill(pid, signal.SIGKILL)
    leftovers = [p for p in Path(tempfile.gettempdir()).glob(f"{MARKER}{token}*")] + \
        [p for p in Path("/dev/shm").glob(f"{MARKER}{token}*")] + list(package.glob(f"{MARKER}{token}*"))
    for path in leftovers:
        path.unlink()
    return {"mode": mode, "first": first, "second": second, "grader_killed": grader_killed, "report": report,
            "rows": rows, "verdicts": verdicts, "escaped": escaped, "leftovers": leftovers,
            "canary": canary.read_text(), "victim_unchanged": paths["victim"].read_bytes() == victim_bytes,
            "connections": [c for c in listener.received if token.encode() in c],
            "outside": list(outside.iterdir()),
            "scratch": [p for run in (first, second) if run is not None   # the graders' own, left behind
                        for p in Path(tempfile.gettempdir()).glob(f"vgg-grade-{run.pid}-*")]}


def _attacks_in(mode, tmp_path_factory, sandbox_or_skip, attacked):
    sandbox_or_skip(mode)
    if mode not in attacked:
        attacked[mode] = _run_attacks(tmp_path_factory.mktemp(f"attacks-{mode}"), mode)
    return attacked[mode]


@pytest.fixture(params=["bwrap", "user", "none"])
def run(request, tmp_path_factory, sandbox_or_skip, attacked):
    return _attacks_in(request.param, tmp_path_factory, sandbox_or_skip, attacked)


@pytest.fixture(params=["bwrap", "user"])
def sandboxed(request, tmp_path_factory, sandbox_or_skip, attacked):
    return _attacks_in(request.param, tmp_path_factory, sandbox_or_skip, attacked)


def _row(run, notebook):
    return next(r for r in run["rows"] if r["notebook"] == notebook)


def test_the_grader_never_writes_or_reads_through_a_planted_link(run):
    assert run["verdicts"]["planted links"] == "['outcome.json', 'progress', 'executed.ipynb', 'results.jsonl']"
    assert run["canary"] == "canary\n"  # in every sandbox: the runner writes no file, the grader writes none there
    attacker = _row(run, "a_attacker.ipynb")
    assert attacker["status"] == "missing" or attacker["status"] == "not run"  # the forged answer never read
    assert "results file not a regular file" in attacker["run"]
    assert attacker["run"].startswith("ran to the end")  # the runner was not stopped by the links (issue #27, 5)


def test_a_killed_grader_leaves_a_report_that_the_next_run_finishes(run):
    if run["grader_killed"]:
        assert run["mode"] == "none"
        assert run["second"].returncode == 0, run["second"].stderr
        assert "resuming an interrupted run" in run["second"].stdout
    else:
        assert run["first"].returncode == 0, run["first"].stderr
    assert "Grading in progress" not in run["report"]
    assert _row(run, "v_victim.ipynb")["status"] == "correct"
    assert run["scratch"] == []   # the killed grader's is removed by the next run (jobs.remove_stale_scratch)


@pytest.mark.parametrize("attack", ATTACKS)
def test_in_a_sandbox_every_attack_fails(sandboxed, attack):
    """(Without a sandbox the instructor accepts these risks: book/instructors.md.)"""
    run = sandboxed
    verdict = run["verdicts"].get(attack, "")
    if attack == "planted links":
        return  # planting in its own folder is allowed; what matters is the test above
    if attack == "/proc snooping":
        assert verdict == "[]"  # the grader is not even in sight
    elif attack == "network to 127.0.0.1":
        assert verdict.startswith("blocked") and run["connections"] == []
    elif attack in ("leaving a 100 MB file", "writing into /tmp"):
        assert run["leftovers"] == []  # in the scratch folder or a private /tmp, removed with it
    elif attack == "a daemon outliving the grader":
        assert run["escaped"] == [] and "pwned" not in run["report"]
    elif attack == "killing the grader":
        assert verdict.startswith("blocked") and not run["grader_killed"]
    elif attack == "writing into vgg_lib":
        assert verdict.count("blocked") == 2, verdict
    else:
        assert verdict.startswith("blocked"), verdict
    assert run["victim_unchanged"] and run["outside"] == []


def test_the_table(attacked, capsys):
    """Prints the verdicts of every attack in every sandbox that ran (issue #27's closing note)."""
    if not attacked:
        pytest.skip("no sandbox ran")
    modes = [m for m in ("bwrap", "user", "none") if m in attacked]
    lines = ["| Attack | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for attack in ATTACKS:
        cells = []
        for mode in modes:
            run = attacked[mode]
            verdict = run["verdicts"].get(attack, "?")
            if attack == "planted links":
                verdict = "canary intact, link not followed" if run["canary"] == "canary\n" else "CANARY CHANGED"
            elif attack == "network to 127.0.0.1":
                verdict = "connected" if run["connections"] else "blocked"
            elif attack == "a daemon outliving the grader":
                verdict = "survived" if run["escaped"] else "killed with the job"
            elif attack == "killing the grader":
                verdict = ("killed it; the next run finished the report" if run["grader_killed"] else "blocked")
            elif attack in ("leaving a 100 MB file", "writing into /tmp"):
                verdict = f"left {len(run['leftovers'])} file(s) on the machine" if run["leftovers"] else \
                    "nothing left on the machine"
            cells.append(verdict[:60])
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert set(attacked) <= {"bwrap", "user", "none"}


def test_a_grader_killed_mid_job_is_cleaned_up_after_and_the_next_run_finishes(tmp_path, sandbox_or_skip):
    """The instructor's grader dies (SIGKILL, out of memory): its reaper kills the job it was running
    and removes the scratch folder; the same command then grades only what is missing. In the user
    sandbox, where the reaper is what kills the job (bubblewrap's job dies with its parent; without
    a sandbox the attacker above kills the grader and the next run finishes the report)."""
    mode = "user"
    sandbox_or_skip(mode)
    token = f"killed-{mode}-{os.getpid()}"
    folder, out = tmp_path / "submissions", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    reference = tmp_path / "homework.ipynb"
    nbformat.write(_notebook('answer = None\ncheck("test/a-count", answer)'), reference)
    nbformat.write(_notebook('check("test/a-count", 42)'), folder / "a_quick.ipynb")
    nbformat.write(_notebook('check("test/a-count", 42)', f"import subprocess\nsubprocess.run(['sh', '-c', 'sleep 600; :', '{MARKER}{token}'])"),
                   folder / "b_slow.ipynb")
    command = [sys.executable, "-c", GRADER, str(folder), "--report", str(out / "report.md"), "--timeout", "600",
               "--exercises-from", str(reference), "--sandbox", mode]
    grader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not _processes_with(MARKER + token):  # b_slow is running
        assert time.monotonic() < deadline and grader.poll() is None, grader.stdout.read()
        time.sleep(0.5)
    grader.kill()
    grader.wait()
    deadline = time.monotonic() + 30
    while _processes_with(MARKER + token) or list(Path(tempfile.gettempdir()).glob(f"vgg-grade-{grader.pid}-*")):
        assert time.monotonic() < deadline, "the reaper left the job running, or its scratch folder"
        time.sleep(0.5)
    assert "Grading in progress: 1 notebook(s) graded, 1 still to run." in (out / "report.md").read_text()
    nbformat.write(_notebook('check("test/a-count", 42)'), folder / "b_slow.ipynb")  # not graded yet: may change
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming an interrupted run" in again.stdout and "1 notebook(s) already graded" in again.stdout
    report = (out / "report.md").read_text()
    assert "Grading in progress" not in report and report.count("| 1/1 |") == 2
