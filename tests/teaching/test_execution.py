"""The execution report: what `make notebooks` stamps into a chapter and the table made from it."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vgg_lib.teaching import execution, instructors_page

REPO = Path(__file__).resolve().parents[2]
VIEW = execution.WIDGET_VIEW


def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _tqdm_notebook(hidden_explorer=True):
    """A chapter with a finished tqdm bar and an explorer widget whose output is removed."""
    state = {"box": _model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
             "l": _model("HTMLModel", value="100%"), "p": _model("FloatProgressModel", value=6.0, max=6.0),
             "r": _model("HTMLModel", value="\u20076/6\u2007[00:01&lt;00:00]"),
             "slider": _model("IntSliderModel", value=3)}
    bar = new_code_cell("fit()", outputs=[new_output("display_data", data={
        VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "  0%|  | 0/6"})])
    explorer = new_code_cell("explore()", outputs=[new_output("display_data", data={
        VIEW: {"model_id": "slider", "version_major": 2, "version_minor": 0}, "text/plain": "Explorer"})])
    if hidden_explorer:
        explorer.metadata["tags"] = ["remove-output"]
    nb = new_notebook(cells=[new_markdown_cell("# T"), bar, explorer])
    nb.metadata["widgets"] = {execution.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return nb


def test_a_progress_bar_becomes_its_final_text_and_unused_widget_state_goes():
    nb = execution.clean(_tqdm_notebook())
    assert nb.cells[1].outputs[0].data == {"text/plain": "100%|██████████| 6/6 [00:01<00:00]"}
    assert "widgets" not in nb.metadata


def test_widget_state_stays_when_a_shown_output_renders_it():
    nb = execution.clean(_tqdm_notebook(hidden_explorer=False))
    assert "widgets" in nb.metadata and VIEW in nb.cells[2].outputs[0].data


def test_stamp_then_table(tmp_path):
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "01_t.ipynb"
    nb = _tqdm_notebook()
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T10:00:00Z",
                                         "shell.execute_reply": "2026-01-01T10:00:30Z"}
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01T10:00:31Z",
                                         "shell.execute_reply": "2026-01-01T10:01:10Z"}
    nbformat.write(nb, path)
    table = execution.markdown([path], tmp_path)
    assert "| {doc}`/notebooks/01_t` | 2026-01-01 10:01 UTC | not recorded | 70 s | not recorded |" in table
    assert "Not stamped by `make notebooks`" in table
    assert execution.main(["--stamp", str(path)]) == 0
    stamped = nbformat.read(path, as_version=4)
    info = stamped.metadata[execution.KEY]
    assert info["profile"] in {"quick", "full"} and info["machine"]["cores"] >= 1
    assert set(info["versions"]) == {"python", "torch", "torchvision"}
    assert "widgets" not in stamped.metadata
    table = execution.markdown([path], tmp_path)
    versions = info["versions"]
    assert (f"| {info['profile']} | 70 s | {execution.describe_machine(info['machine'])} "
            f"| {versions['python']}, {versions['torch']}, {versions['torchvision']} |") in table
    assert "Not stamped" not in table


def test_the_books_execution_report_is_up_to_date():
    text = (REPO / "book" / "execution.md").read_text(encoding="utf-8")
    assert instructors_page.regenerate(text, REPO) == text, \
        "book/execution.md is stale: python -m vgg_lib.teaching.instructors_page --write"


def test_no_chapter_stores_widget_state_that_nothing_on_its_page_renders():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cleaned = execution.clean(nbformat.reads(nbformat.writes(nb), as_version=4))
        assert cleaned == nb, f"{path.name}: python -m vgg_lib.teaching.execution --clean {path.relative_to(REPO)}"


def test_the_report_sums_the_cost_of_the_shipped_run_records(tmp_path):
    assert execution.records_markdown(tmp_path, []) == ""  # no results/: no table
    shipped = sorted((REPO / "results" / "residual_networks").glob("*.json"))[:2]
    (tmp_path / "results" / "study").mkdir(parents=True)
    (tmp_path / "results" / "empty").mkdir()
    for path in shipped:
        (tmp_path / "results" / "study" / path.name).write_bytes(path.read_bytes())
    from vgg_lib.experiments.runs import read_record
    records = [read_record(path) for path in shipped]
    assert "| - | `results/study/` | 2 |" in execution.records_markdown(tmp_path, [])  # read by none
    reader = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(provenance)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="2 runs: 2 read from (results/study/)\n")])])
    nbformat.write(reader, tmp_path / "07_reader.ipynb")
    table = execution.records_markdown(tmp_path, [tmp_path / "07_reader.ipynb"])
    assert table.count("| `results/") == 1 and "| 7 | `results/study/` | 2 |" in table
    cpu = execution._duration(sum(r.cpu_seconds for r in records))
    assert f"| {cpu} |" in table and f"| all | | 2 | | | " in table and f"takes {cpu} of CPU time" in table
    assert "fp32, 1 thread(s)" in table


def test_the_run_times_table_counts_the_records_a_chapter_reads_and_their_cpu_time(tmp_path):
    from vgg_lib.experiments.runs import read_record
    from vgg_lib.teaching import runtimes

    shipped = sorted((REPO / "results" / "residual_networks").glob("*.json"))[:3]
    (tmp_path / "results" / "study").mkdir(parents=True)
    for path in shipped:
        (tmp_path / "results" / "study" / path.name).write_bytes(path.read_bytes())
    said = "3 runs: 3 read from the records the book ships (results/study/), 0 trained here\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "results = train_grid(build, data, 'A', LRS, SEEDS)",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text=said)])])
    assert runtimes.records_read(nb) == ["study"] and runtimes.trains(nb)
    assert runtimes.records_cost(nb, tmp_path) == (3, sum(read_record(p).cpu_seconds for p in shipped))
    assert runtimes.records_cost(nbformat.v4.new_notebook(), tmp_path) == (0, 0)
