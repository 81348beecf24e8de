"""flax-sentiment: recurrent sentiment classifiers on IMDB in JAX/Flax.

A folder per role, each importing only from the layers below it
(docs/design.md draws them; tests/test_layout.py holds them):
`usage/` (a trained run put to use: predict, explain, ensemble, export and
its loader, serve, report), `training/` (steps, feeding, the loop,
signals, language-model pretraining, the train command), `text_models/`
(n-grams, paragraph vectors), `tracking/` (workdir, checkpoints, progress,
metrics, what a run shows), `data/` (the text rule, datasets, your files,
batching, word vectors) and `model/` (the classifier, its recurrences and
kernels, scoring), `configuration/` (fields, config files, recipes) and
`runtime/` (errors, files, devices, library noise, XLA flags). On top:
`api` (the Python API), `cli` (the console script) and `recipe`; `predict`,
`export`, `serve`, `report`, `exported` and `pretrain` are the names these
modules had before the move, kept for users.
"""

import os as _os

from flax_sentiment.runtime import xla_cpu as _xla_cpu

_xla_cpu.apply()
# A relative TFDS_DATA_DIR (e.g. ../shared/tensorflow_datasets) names a
# folder relative to where the user started: made absolute once, here, so
# tfds, later folder changes and subprocesses all see that folder.
if _os.environ.get("TFDS_DATA_DIR"):
  _os.environ["TFDS_DATA_DIR"] = _os.path.abspath(
      _os.path.expanduser(_os.environ["TFDS_DATA_DIR"]))

# In a clone the configs live at the repository's top (configs/), which
# the wheel and an editable install map to flax_sentiment.configs. Run from
# the clone without those (python run.py or pytest after `pip install .`,
# whose package this folder shadows), they are found there too.
_PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__))
_CLONE_CONFIGS = _os.path.join(_os.path.dirname(_PACKAGE_DIR), "configs")
if (not _os.path.isdir(_os.path.join(_PACKAGE_DIR, "configs"))
    and _os.path.isfile(_os.path.join(_CLONE_CONFIGS, "__init__.py"))
    and _os.path.isfile(_os.path.join(_CLONE_CONFIGS, "default.py"))):
  import importlib.util as _util
  import sys as _sys
  if "flax_sentiment.configs" not in _sys.modules:
    _spec = _util.spec_from_file_location(
        "flax_sentiment.configs", _os.path.join(_CLONE_CONFIGS, "__init__.py"),
        submodule_search_locations=[_CLONE_CONFIGS])
    _configs = _util.module_from_spec(_spec)
    _sys.modules["flax_sentiment.configs"] = _configs
    _spec.loader.exec_module(_configs)
    configs = _configs

__version__ = "0.3.0"
