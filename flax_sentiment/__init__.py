"""flax-sentiment: recurrent sentiment classifiers on IMDB in JAX/Flax.

Modules, one concern each (docs/design.md shows how a run flows through
them): `data` (IMDB via tfds, tokenizer, vocabulary, padding, validation
split, token cache), `pretrain` (word2vec), `language_model` (language-
model pretraining of the recurrences), `batching` (epoch plans),
`models` (the classifier), `recurrence` (fast RNN/LSTM/GRU loops), `train`
(pure steps), `metrics` (what is measured), `progress` (where training
stands; the epoch-selection rule), `feeding` (plans to compiled calls),
`loop` (a run, top to bottom), `signals` (SIGTERM/SIGINT), `monitor` (what
the user sees), `rundir` (the workdir's files, what may change on resume),
`checkpoints` (orbax, verified), `parallel` (devices and processes),
`implementation` (which recurrence runs), `predict` (your own text), `ensemble` (several runs' mean), `api`
(the steps as functions), `report` (tables and plots), `config_checks` and
`errors`; `xla_cpu` (XLA CPU flags set by default, before jax starts) and
`pallas_recurrence` (the recurrence as Mosaic GPU kernels).
"""

import os as _os

from flax_sentiment import xla_cpu as _xla_cpu

_xla_cpu.apply()
# A relative TFDS_DATA_DIR (e.g. ../shared/tensorflow_datasets) names a
# folder relative to where the user started: made absolute once, here, so
# tfds, later folder changes and subprocesses all see that folder.
if _os.environ.get("TFDS_DATA_DIR"):
  _os.environ["TFDS_DATA_DIR"] = _os.path.abspath(
      _os.path.expanduser(_os.environ["TFDS_DATA_DIR"]))

__version__ = "0.3.0"
