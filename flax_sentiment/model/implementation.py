"""Choosing what the recurrence runs as: one module owns it.

`config.implementation` is "auto" (the default), "hoisted" (the XLA loop,
`recurrence.py`), "stock" (flax `nn.RNN`) or "pallas" (the Mosaic GPU
kernels, `pallas_recurrence.py`; Hopper GPUs). Here: what "auto" resolves to
on this machine (`resolve`), the unroll for `config.unroll = 0`
(`resolve_unroll`), whether the kernels can run a config on a device
(`pallas_cannot_run`; `config_checks.check_implementation_runs` refuses a
run with it), the console line naming the choice (`line`), and what a
prediction from a pallas-trained workdir runs as where the kernels cannot
(`for_prediction`). `models.py` holds the model only; it takes the resolved
implementation and unroll from here.
"""

import copy
import pathlib

import jax

from flax_sentiment.model import pallas_recurrence

IMPLEMENTATIONS = ("auto", "hoisted", "stock", "pallas")

# Time steps per loop iteration when config.unroll = 0 ("auto"), by backend.
# On a GPU every iteration of an XLA while loop launches its kernels, and
# unrolling lets XLA fuse across steps (LSTM-512 on an H100: see
# docs/performance.md); on CPU it measured the same or slower.
AUTO_UNROLL = {"gpu": 8}

# What each resolved implementation is, as `line` says it.
_WHAT = {"pallas": "Mosaic GPU kernels, bf16 recurrent matmuls",
         "hoisted": "XLA loop", "stock": "flax nn.RNN"}


def resolve_unroll(unroll: int, mask_padding: bool,
                   backend: str | None = None) -> int:
  """`unroll`, or for 0 the backend's default (1 for masked loops, whose
  bounds are dynamic)."""
  if unroll:
    return unroll
  if mask_padding:
    return 1
  return AUTO_UNROLL.get(backend or jax.default_backend(), 1)


def pallas_cannot_run(config, device: jax.Device | None = None) -> str | None:
  """Why the pallas kernels cannot run `config`'s recurrence on `device`
  (default: the first), as the one line a user reads, or None: they need
  an NVIDIA Hopper GPU and hidden sizes whose weights fit in shared
  memory."""
  return pallas_recurrence.cannot_run(
      config.cell, config.hidden_dim, config.batch_size, config.seq_len,
      config.mask_padding, device)


def resolve(config, device: jax.Device | None = None) -> str:
  """`config.implementation`, or for "auto" the fastest that runs here: the
  Pallas kernels on a single Hopper GPU where they fit (2.4-3.7x the XLA
  loop on an H200, docs/performance.md), else the hoisted XLA loop (CPU,
  TPU, other GPUs, several devices, an explicit unroll > 1)."""
  if config.implementation != "auto":
    return config.implementation
  if config.unroll > 1 or jax.device_count() > 1:
    return "hoisted"
  return "hoisted" if pallas_cannot_run(config, device) else "pallas"


def line(config) -> str:
  """What the recurrence runs as, e.g. 'Recurrence: pallas (Mosaic GPU
  kernels, bf16 recurrent matmuls; auto)'."""
  resolved = resolve(config)
  how = "auto" if config.implementation == "auto" else "config"
  return f"Recurrence: {resolved} ({_WHAT[resolved]}; {how})"


def for_prediction(config, workdir: str | pathlib.Path,
                   device: jax.Device | None = None):
  """(config to predict with, warning line or None) for a workdir trained
  with `config`: one trained with implementation='pallas' predicts with the
  XLA loop where the kernels cannot run (the same parameters; the loop
  computes the same function), and the warning says so. `config` itself is
  left unchanged."""
  if config.implementation != "pallas":
    return config, None
  reason = pallas_recurrence.unavailable_reason(device)
  if not reason:
    return config, None
  config = copy.deepcopy(config)
  config.implementation = "hoisted"
  return config, (
      f"warning: {workdir} was trained with implementation='pallas', whose "
      f"kernels cannot run here ({reason}); predicting with the XLA loop "
      f"(the same model, float32 recurrent matmuls)")
