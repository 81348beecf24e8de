"""Which examples go in which batch: epoch plans as index arrays.

An epoch is a list of `Chunk`s; each chunk is `steps` batches of the same
length, run by one compiled call. Every example appears in exactly one batch
row with weight 1; rows that fill up a last partial batch, and whole batches
that fill up a last partial chunk, have weight 0 and are skipped.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Chunk:
  length: int            # time steps of every batch in the chunk
  indices: np.ndarray    # [steps, batch] example ids (0 in filler rows)
  weights: np.ndarray    # [steps, batch] 1.0 for real rows, 0.0 for filler
  # [steps, batch] ids of unlabeled reviews paired with the batches
  # (virtual adversarial training, `pair_unlabeled`), or None.
  unlabeled: np.ndarray | None = None


def bucket_boundaries(lengths: np.ndarray, num_buckets: int, seq_len: int,
                      multiple: int = 16) -> list[int]:
  """Bucket lengths at the quantiles of `lengths`, rounded up to `multiple`,
  the last one `seq_len`. One bucket (no bucketing) if num_buckets <= 1."""
  if num_buckets <= 1:
    return [seq_len]
  quantiles = np.quantile(lengths, np.arange(1, num_buckets) / num_buckets)
  rounded = np.minimum(np.ceil(np.maximum(quantiles, 1) / multiple) * multiple,
                       seq_len).astype(int)
  return sorted(set(rounded.tolist()) | {seq_len})


def group_by_bucket(lengths: np.ndarray,
                    boundaries: list[int]) -> list[tuple[int, np.ndarray]]:
  """(bucket length, example ids) for each non-empty bucket: each example
  goes to the shortest bucket that holds it."""
  which = np.searchsorted(boundaries, lengths, side="left")
  return [(boundary, np.flatnonzero(which == b))
          for b, boundary in enumerate(boundaries) if np.any(which == b)]


def plan_epoch(groups: list[tuple[int, np.ndarray]], batch_size: int,
               steps_per_call: int,
               rng: np.random.Generator | None = None,
               lengths: np.ndarray | None = None) -> list[Chunk]:
  """Batches each group, packs them into chunks of `steps_per_call` batches.

  With `rng` the examples within each group and the order of the chunks are
  shuffled (training); without, both keep their order (evaluation).

  With `lengths` [num_examples], each chunk's examples are sorted by length
  before they are cut into batches, so that a batch holds reviews of nearly
  the same length (the model skips the steps that are padding in every row
  of a batch); with `rng` the chunk then runs its batches in shuffled order.
  Which examples share a chunk stays random.
  """
  rows_per_chunk = batch_size * steps_per_call
  chunks = []
  for length, ids in groups:
    if rng is not None:
      ids = rng.permutation(ids)
    num_chunks = -(-len(ids) // rows_per_chunk)
    indices = np.zeros((num_chunks, rows_per_chunk), np.int64)
    weights = np.zeros((num_chunks, rows_per_chunk), np.float32)
    indices.flat[:len(ids)] = ids
    weights.flat[:len(ids)] = 1.0
    if lengths is not None:  # filler rows last; ties keep the shuffled order
      key = np.where(weights > 0, lengths[indices], np.inf)
      order = np.argsort(key, axis=1, kind="stable")
      indices = np.take_along_axis(indices, order, axis=1)
      weights = np.take_along_axis(weights, order, axis=1)
    shape = (num_chunks, steps_per_call, batch_size)
    for i, w in zip(indices.reshape(shape), weights.reshape(shape)):
      if lengths is not None and rng is not None:
        steps = rng.permutation(steps_per_call)
        i, w = i[steps], w[steps]
      chunks.append(Chunk(length, i, w))
  if rng is not None:
    chunks = [chunks[i] for i in rng.permutation(len(chunks))]
  return chunks


def pair_unlabeled(chunks: list[Chunk], lengths: np.ndarray,
                   unlabeled_lengths: np.ndarray, boundaries: list[int],
                   rng: np.random.Generator) -> list[Chunk]:
  """The chunks, each batch paired with a batch of unlabeled reviews of the
  same length bucket (`Chunk.unlabeled`); a chunk's unlabeled ids are
  distinct while the bucket has enough reviews.

  lengths [examples]: of the labeled split; unlabeled_lengths [unlabeled].
  Each bucket's unlabeled reviews are drawn in a shuffled order (`rng`),
  cycling when an epoch needs more than the bucket holds; a bucket with
  none borrows from all reviews (cut to the bucket's length). A chunk's
  unlabeled rows are sorted by length and cut into batches that go to the
  labeled batches in the order of their longest review, so that the two
  batches of a step have similar lengths."""
  groups = dict(group_by_bucket(unlabeled_lengths, boundaries))
  everyone = np.arange(len(unlabeled_lengths))
  orders = {length: rng.permutation(groups.get(length, everyone))
            for length in sorted({chunk.length for chunk in chunks})}
  used = dict.fromkeys(orders, 0)
  paired = []
  for chunk in chunks:
    steps, batch = chunk.indices.shape
    order, start = orders[chunk.length], used[chunk.length]
    ids = order[np.arange(start, start + steps * batch) % len(order)]
    used[chunk.length] = start + steps * batch
    ids = ids[np.argsort(unlabeled_lengths[ids], kind="stable")]
    longest = np.where(chunk.weights > 0, lengths[chunk.indices], 0).max(1)
    unlabeled = np.empty((steps, batch), ids.dtype)
    unlabeled[np.argsort(longest, kind="stable")] = ids.reshape(steps, batch)
    paired.append(dataclasses.replace(chunk, unlabeled=unlabeled))
  return paired


def unlabeled_rng(seed: int, epoch: int) -> np.random.Generator:
  """The RNG that pairs an epoch's batches with unlabeled reviews: its own
  stream, so that pairing leaves the labeled order (`epoch_rng`) as is."""
  return np.random.default_rng([seed, epoch, 1])


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
  """The shuffling RNG of one epoch: a function of (seed, epoch) alone, so a
  resumed run replays the same order."""
  return np.random.default_rng([seed, epoch])


def id_capacity(count: int) -> int:
  """`count` rounded up to one of few sizes, at most 1/8 (12.5%) larger:
  multiples of 2^(bit_length - 4), e.g. 1,024, 1,152, ... 1,920, 2,048,
  2,304, ..., so that a run meets few distinct shapes (compilations)."""
  step = max(8, 2 ** (int(count).bit_length() - 4))
  return -(-int(count) // step) * step


def _present(tokens: np.ndarray, num_words: int) -> np.ndarray:
  """tokens [steps, batch, length] -> [steps, num_words]: id used in batch."""
  steps = tokens.shape[0]
  present = np.zeros((steps, num_words), bool)
  present[np.arange(steps)[:, None], tokens.reshape(steps, -1)] = True
  return present


def id_capacities(tokens: np.ndarray, plans: list[list[Chunk]],
                  num_words: int, enabled: bool = True,
                  unlabeled_tokens: np.ndarray | None = None
                  ) -> dict[int, int | None]:
  """Per batch length, the distinct-id capacity of a whole run: the largest
  count of distinct ids in any batch of any chunk of `plans` (e.g. every
  epoch's plan), rounded up by `id_capacity`; None where projecting that
  many rows would not be cheaper (not below num_words or batch * length),
  or if not `enabled`. One capacity per length means one compiled shape per
  length for the whole run. tokens [examples, seq_len]: the split's ids;
  unlabeled_tokens [unlabeled, seq_len]: those `Chunk.unlabeled` points
  to, counted with the labeled ones (`chunk_tokens`)."""
  if not enabled:
    return {}
  largest: dict[int, int] = {}
  batch = 0
  for chunks in plans:
    for chunk in chunks:
      batch = chunk.indices.shape[1]
      counts = _present(chunk_tokens(chunk, tokens, unlabeled_tokens),
                        num_words).sum(axis=1)
      largest[chunk.length] = max(largest.get(chunk.length, 0),
                                  int(counts.max()))
  capacities = {}
  for length, count in largest.items():
    capacity = id_capacity(count)
    capacities[length] = (capacity if capacity < min(num_words, batch * length)
                          else None)
  return capacities


def chunk_tokens(chunk: Chunk, tokens: np.ndarray,
                 unlabeled_tokens: np.ndarray | None = None) -> np.ndarray:
  """[steps, rows, length] token ids of a chunk's batches: its reviews,
  then (if paired and given) its unlabeled reviews (rows = 2 * batch)."""
  held = tokens[chunk.indices][..., :chunk.length]
  if chunk.unlabeled is None or unlabeled_tokens is None:
    return held
  return np.concatenate(
      [held, unlabeled_tokens[chunk.unlabeled][..., :chunk.length]], axis=1)


def distinct_ids(tokens: np.ndarray, num_words: int,
                 capacity: int | None = None) -> np.ndarray | None:
  """For each batch of a chunk, ids that cover all its word ids.

  tokens [steps, batch, length] int -> [steps, capacity] int32. Each row
  holds the batch's distinct ids in ascending order, then other ids
  (projected and unused) up to `capacity`. Without `capacity`: the chunk's
  largest count of distinct ids rounded up by `id_capacity`, or None when
  that would not make the model's input projection cheaper (capacity not
  below num_words or batch * length).
  """
  present = _present(tokens, num_words)
  if capacity is None:
    capacity = id_capacity(present.sum(axis=1).max())
    if capacity >= min(num_words, tokens[0].size):
      return None
  return np.argsort(~present, axis=1, kind="stable")[:, :capacity].astype(
      np.int32)
