"""The notebooks in examples/ run, in a real Jupyter kernel, on miniature data (their small mode);
a notebook that rots fails here. They are stored without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minidata import make_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"lenet-d2l-homework.ipynb", "resnet20-study.ipynb", "degradation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    assert [c for c in code if c.get("outputs") or c.get("execution_count") is not None] == []


def _outputs(cell, kind: str) -> list:
    return [o for o in cell.get("outputs", []) if o["output_type"] == kind]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_real_kernel(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    make_idx_dataset(tmp_path / "fm", n_train=256, n_test=64, learnable=True)
    monkeypatch.setenv("CONVLAB_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("CONVLAB_DATA", str(tmp_path / "fm"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    # raises CellExecutionError, naming the cell, on any error
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in _outputs(c, "error")]
    shown = [o for c in code for o in _outputs(c, "display_data")]
    # summaries render as HTML tables
    assert any("<table class=convlab-summary>" in o["data"].get("text/html", "") for o in shown)
    train = [c for c in code if "convlab.train(" in c.source or "experiment.degradation(" in c.source]
    assert train, "every example notebook trains something"
    text = "".join(o["text"] for o in _outputs(train[0], "stream"))
    assert "epoch   1/" in text and "test accuracy" in text
    # what train() prints through rich (the model's summary) arrives as HTML
    assert any("text/html" in o["data"] for o in _outputs(train[0], "display_data"))
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        pass
    else:  # rich draws the live progress bar into an ipywidgets Output
        assert any("application/vnd.jupyter.widget-view+json" in o["data"]
                   for o in _outputs(train[0], "display_data"))
    if "convlab.draw(" in "".join(c.source for c in code):  # diagrams render as SVG
        assert any("image/svg+xml" in o["data"] for o in shown)
    if "plot_filters" in "".join(c.source for c in code):
        assert sum("image/png" in o["data"] for o in shown) >= 3  # curves, filters, maps
