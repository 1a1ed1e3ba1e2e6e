"""The notebooks run top to bottom (executed here with nbclient, as a user would run them, on the trimmed
settings they switch to under BNN_ASYM_NOTEBOOK_TRIM=1), and every cell that draws a plot leaves an image
in its output -- a PlotCollection's text repr is not a plot."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
PLOTTING = re.compile(r"\barviz_plots\.plot_\w+\(|\bplt\.|\.plot\(|\bplot_\w+\(")


def plotting_cells_without_images(nb) -> list[str]:
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not PLOTTING.search(cell.source):
            continue
        if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            missing.append(cell.source.splitlines()[0])
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_and_shows_its_plots(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the notebooks select the inline backend themselves
    monkeypatch.setenv("BNN_ASYM_NOTEBOOK_TRIM", "1")  # small data and short runs; same code paths
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' scratch folders (tempfile.mkdtemp) go with the test
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert not plotting_cells_without_images(nb), "plotting cells without an image output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_holds_its_rendered_figures(path):
    nb = nbformat.read(path, as_version=4)
    assert all(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks with their outputs"
    assert not plotting_cells_without_images(nb)


def test_the_check_catches_a_plot_cell_with_only_a_text_repr():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("arviz_plots.plot_trace(dt)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "<PlotCollection at 0x1>"})]
    assert plotting_cells_without_images(nb) == ["arviz_plots.plot_trace(dt)"]


def test_there_is_a_notebook():
    assert NOTEBOOKS
