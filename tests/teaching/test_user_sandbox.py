"""The user sandbox where the machine allows no namespaces (many containers): it still runs each
notebook as a user of its own, but only if nothing protected is readable to that user; otherwise
grading is refused with one line. This machine allows namespaces, so the test asks for none."""

import nbformat

from vgg_lib.teaching import jobs, sandbox, submissions
from vgg_lib.teaching.job_watch import Finished


def test_without_namespaces_grading_is_refused_when_a_job_could_read_what_is_protected(sandbox_or_skip, tmp_path):
    user = sandbox_or_skip("user")
    secret = tmp_path / "solutions"
    secret.mkdir()
    (secret / "answers.ipynb").write_text("{}")
    secret.chmod(0o755)
    problem = None
    try:
        with jobs.Grading(user, sandbox.Limits(seconds=60), protected=[secret], namespaces=False):
            pass
    except sandbox.Refused as error:
        problem = str(error)
    assert problem is not None and "\n" not in problem
    # What the probe runs into first here depends on the machine: Python installed under a private
    # folder (/root), or the readable solutions; either way the line says how to get a sandbox.
    assert ("could not start Python" in problem or f"could still read {secret}" in problem), problem
    assert "apt install bubblewrap" in problem and "--sandbox none" in problem


class _Grading:
    """Stands in for jobs.Grading: what a user sandbox without a network namespace reports."""

    limits = sandbox.Limits(seconds=60)

    def run(self, notebook_text, timeout, kernel):
        return Finished(outcome="ran to the end", confined={"network": False, "mounts": False, "processes": False})


def test_a_notebook_run_without_a_network_namespace_says_so_in_its_row(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    submission = submissions.run_submission("ann", path, _Grading(), timeout=10)
    assert submission.run_summary == "ran to the end; network not isolated (no network namespace on this machine)"


def test_a_notebook_run_in_another_sandbox_has_no_such_note(tmp_path):
    grading = _Grading()
    grading.run = lambda *args: Finished(outcome="ran to the end")  # no "confined" line: bwrap or none
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    assert submissions.run_submission("ann", path, grading, timeout=10).run_summary == "ran to the end"
