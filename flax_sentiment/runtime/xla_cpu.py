"""XLA CPU flags this package sets by default, where they were measured to
pay (docs/performance.md, "XLA CPU flags").

On CPUs with AVX-512, XLA still emits 256-bit vector code for its own loops
(the elementwise gate math, reductions, the Adam update) unless told to
prefer 512-bit vectors: LSTM-64 train steps ran ~10% and RNN-64 ~15% faster
with it (median of 9 and 5 interleaved runs). Matmuls (library kernels) are
unaffected; the elementwise results are the same up to float rounding
(reductions may sum in another order).

XLA reads XLA_FLAGS when its CPU backend starts, so `apply` must run before
the first jax computation; importing `flax_sentiment` does it. A value the
user set in XLA_FLAGS is kept. XLA aborts the process on a flag it does not
know, so the default is set only for the jaxlib versions it was checked on.
"""

import importlib.metadata
import os

VECTOR_WIDTH = "--xla_cpu_prefer_vector_width"
# jaxlib (major, minor) versions whose XLA knows the flag (checked: 0.10.2,
# 0.11.2, 0.12.1).
CHECKED_JAXLIB = {(0, 10), (0, 11), (0, 12)}


def _jaxlib_checked() -> bool:
  try:
    version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return False
  parts = version.split(".")
  try:
    return (int(parts[0]), int(parts[1])) in CHECKED_JAXLIB
  except (IndexError, ValueError):
    return False


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
  """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def with_defaults(xla_flags: str, flags: set[str]) -> str:
  """`xla_flags` plus this package's defaults for a CPU with `flags`."""
  if "avx512f" not in flags or VECTOR_WIDTH in xla_flags:
    return xla_flags
  return f"{xla_flags} {VECTOR_WIDTH}=512".strip()


def apply() -> None:
  if not _jaxlib_checked():
    return
  os.environ["XLA_FLAGS"] = with_defaults(os.environ.get("XLA_FLAGS", ""),
                                          cpu_flags())
