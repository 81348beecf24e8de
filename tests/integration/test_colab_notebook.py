import ast
import json

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"


def test_colab_notebook_is_valid_and_its_code_parses():
  raw = json.loads(NOTEBOOK.read_text())
  notebook = nbformat.reads(json.dumps(raw), as_version=4)
  nbformat.validate(notebook)
  code_cells = [c for c in notebook.cells if c.cell_type == "code"]
  assert code_cells
  joined = "\n".join(c.source for c in code_cells)
  for needed in ("pip install", "jax.devices()", "run.py --config configs/lstm.py",
                 "metrics.jsonl"):
    assert needed in joined
  for cell in code_cells:
    # IPython lines (!shell, %magic, and their continuations) are not Python.
    python, continued = [], False
    for line in cell.source.splitlines():
      shell = continued or line.lstrip().startswith(("!", "%"))
      continued = shell and line.rstrip().endswith("\\")
      python.append("" if shell else line)
    ast.parse("\n".join(python))
