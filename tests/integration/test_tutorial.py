"""notebooks/tutorial.ipynb and its Korean twin tutorial_ko.ipynb run top to
bottom (in a Jupyter kernel, as on Colab), on fake IMDB with the size switch
turned down to tiny; the Korean one then learns the Korean reviews the
repository ships."""

import os

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = REPO / "notebooks"
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
KO_EPOCHS = 8
"""


def run_notebook(name: str, tmp_path, monkeypatch) -> tuple[list, str]:
  """(cells, their text output) of a notebook run with TINY sizes."""
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
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
  return notebook, "\n".join(outputs.values())


@pytest.mark.parametrize("name", ["tutorial.ipynb", "tutorial_ko.ipynb"])
def test_tutorial_runs_top_to_bottom(name, tmp_path, monkeypatch):
  notebook, text = run_notebook(name, tmp_path, monkeypatch)
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
  if name == "tutorial_ko.ipynb":
    check_korean_part(text)


def check_korean_part(text: str) -> None:
  """Part 5 of tutorial_ko.ipynb: syllables as tokens, a test accuracy well
  above chance on the held-out fifth of examples/reviews_ko.csv, and its
  two example reviews scored the right way round."""
  assert "토크나이저: characters" in text
  assert "['배', '우', '들', '연', '기', '가'," in text
  last = [line for line in text.splitlines() if line.startswith("에폭 ")][-1]
  assert float(last.split("테스트 정확도 ")[1]) > 0.8, last
  scored = [line.split()[1] for line in text.splitlines()
            if line.endswith(("다시 보고 싶은 영화", "시간 낭비였다"))]
  assert scored == ["긍정", "부정"]
