"""Review texts on disk, read memory-mapped: what the text models (n-grams,
paragraph vectors) read, so that a large file is not held in memory.

A store is a folder in the cache holding, per source ("train", "test",
"unsupervised"): `<name>_texts.bin` (every review's UTF-8 bytes, one after
another), `<name>_starts.npy` [n] int64, `<name>_lengths.npy` [n] int64 and
`<name>_labels.npy` [n] int32. It is written whole or not at all, by
streaming through the sources once (`build`).
"""

import dataclasses
import json
import pathlib
from typing import Callable, Iterator, Sequence

import numpy as np

from flax_sentiment.data import sources
from flax_sentiment.runtime import files

STORE_FORMAT = 1  # bump when the store's files change
Stream = Callable[[], Iterator[sources.Batch]]


@dataclasses.dataclass(frozen=True, eq=False)
class Texts(Sequence[bytes]):
  """Some reviews' texts: a sequence of bytes read from the memory-mapped
  `data` [total] uint8 at starts [n] int64 / lengths [n] int64; labels [n]
  int32 (-1: unlabeled)."""
  data: np.ndarray
  starts: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.starts)

  def __getitem__(self, row: int | slice) -> "bytes | Texts":
    if isinstance(row, slice):
      return self.subset(np.arange(len(self))[row])
    start = int(self.starts[row])
    return self.data[start:start + int(self.lengths[row])].tobytes()

  def __iter__(self) -> Iterator[bytes]:
    for start, length in zip(self.starts.tolist(), self.lengths.tolist()):
      yield self.data[start:start + length].tobytes()

  def subset(self, rows: np.ndarray) -> "Texts":
    """The reviews `rows` (indices), in that order; no text is copied."""
    return Texts(self.data, self.starts[rows], self.lengths[rows],
                 self.labels[rows])


def build(path: pathlib.Path, streams: dict[str, Stream]) -> None:
  """Writes the store at `path` (whole or not at all) from the sources'
  batches, one batch in memory at a time."""
  with files.atomic_directory(path, flag="--config.cache_dir") as directory:
    for name, stream in streams.items():
      lengths, labels = [], []
      with open(directory / f"{name}_texts.bin", "wb") as out:
        for texts, batch_labels in stream():
          out.write(b"".join(texts))
          lengths.append(np.fromiter(map(len, texts), np.int64, len(texts)))
          labels.append(batch_labels)
      lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
      starts = np.zeros(len(lengths), np.int64)
      np.cumsum(lengths[:-1], out=starts[1:])
      np.save(directory / f"{name}_starts.npy", starts)
      np.save(directory / f"{name}_lengths.npy", lengths)
      np.save(directory / f"{name}_labels.npy", np.concatenate(
          labels).astype(np.int32) if labels else np.zeros(0, np.int32))
    (directory / "sources.json").write_text(json.dumps(list(streams)))


def load(path: pathlib.Path) -> dict[str, Texts]:
  """The sources of a store `build` wrote."""
  out = {}
  for name in json.loads((path / "sources.json").read_text()):
    data_path = path / f"{name}_texts.bin"
    data = (np.memmap(data_path, np.uint8, "r") if data_path.stat().st_size
            else np.zeros(0, np.uint8))
    part = lambda p, name=name: np.load(path / f"{name}_{p}.npy")
    out[name] = Texts(data, part("starts"), part("lengths"), part("labels"))
  return out
