"""notebooks/tutorial.ipynb runs top to bottom (in a Jupyter kernel, as on
Colab), on fake IMDB with its size switch turned down to tiny."""

import os

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO / "notebooks" / "tutorial.ipynb"
# Served by tfds' mock inside the kernel (no data, no network).
FAKE_DATA = """
import sys
sys.path.insert(0, {repo!r})
from tests.fake_imdb import mock_imdb
_fake_imdb = mock_imdb(256, 128)
_fake_imdb.__enter__()
"""
TINY = """
SMALL = True
CELL = "lstm"
SEQ_LEN = 16
size = dict(max_train_examples=256, max_test_examples=128, num_epochs=2)
"""


def test_tutorial_runs_top_to_bottom(tmp_path, monkeypatch):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  parameters = [c for c in notebook.cells
                if "parameters" in c.metadata.get("tags", [])]
  assert len(parameters) == 1 and "SMALL = True" in parameters[0].source
  parameters[0].source = TINY
  notebook.cells.insert(0, nbformat.v4.new_code_cell(
      FAKE_DATA.format(repo=str(REPO))))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("FLAX_SENTIMENT_CACHE", str(tmp_path / "cache"))
  client = nbclient.NotebookClient(notebook, timeout=600,
                                   kernel_name="python3",
                                   resources={"metadata": {"path": str(REPO)}})
  client.execute()  # raises CellExecutionError on any failing cell
  outputs = {i: "".join(o.get("text", "") for o in c.get("outputs", []))
             for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
  text = "\n".join(outputs.values())
  assert "Total params:" in text and "step 3: loss" in text
  losses = [float(line.split("loss ")[1].split()[0])
            for line in text.splitlines() if line.startswith("step ")]
  assert losses[-1] < losses[0]  # the inline train step learns
  assert "'epoch': 2" in text and "test_accuracy" in text
  assert any(o.get("output_type") == "display_data" and "image/png" in
             o.get("data", {}) for c in notebook.cells
             for o in c.get("outputs", []))  # the learning curves
  assert "positive" in text or "negative" in text
  assert os.path.isdir(tmp_path / "cache")
