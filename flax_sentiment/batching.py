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


def bucket_boundaries(lengths: np.ndarray, num_buckets: int, seq_len: int,
                      multiple: int = 16) -> list[int]:
  """At most `num_buckets` bucket lengths, multiples of `multiple` and the
  last one `seq_len`, that minimise the padded time steps of `lengths` when
  each example is padded to the shortest bucket that holds it. One bucket
  (no bucketing) if num_buckets <= 1.

  Exact, by dynamic programming over the candidate lengths. On IMDB at 512
  with 8 buckets a batch averages 245 steps (quantile boundaries: 248); with
  16, 233 (237).
  """
  candidates = sorted(set(range(multiple, seq_len, multiple)) | {seq_len})
  if num_buckets <= 1 or len(candidates) == 1:
    return [seq_len]
  n = len(candidates)
  which = np.searchsorted(candidates, np.clip(lengths, 1, seq_len))
  fits = np.cumsum(np.bincount(which, minlength=n))  # examples <= candidate
  bound = np.asarray(candidates, np.float64)
  # best[j]: fewest padded steps for the examples that fit candidates[j],
  # with at most k + 1 buckets, the longest being candidates[j]; back[k][j]:
  # the next shorter bucket in that solution (-1: as with k buckets).
  best = bound * fits
  back = [np.full(n, -1)]
  for _ in range(min(num_buckets, n) - 1):
    # cost[i, j]: best[i], then one bucket of candidates[j] for the rest.
    cost = best[:, None] + bound[None, :] * (fits[None, :] - fits[:, None])
    cost[np.tril_indices(n)] = np.inf
    shorter = np.argmin(cost, axis=0)
    shorter_cost = cost[shorter, np.arange(n)]
    back.append(np.where(shorter_cost < best, shorter, -1))
    best = np.minimum(best, shorter_cost)
  boundaries, j = [], n - 1
  for k in reversed(range(len(back))):
    if k == 0 or back[k][j] >= 0:
      boundaries.append(candidates[j])
      j = back[k][j]
  return boundaries[::-1]


def group_by_bucket(lengths: np.ndarray,
                    boundaries: list[int]) -> list[tuple[int, np.ndarray]]:
  """(bucket length, example ids) for each non-empty bucket: each example
  goes to the shortest bucket that holds it."""
  which = np.searchsorted(boundaries, lengths, side="left")
  return [(boundary, np.flatnonzero(which == b))
          for b, boundary in enumerate(boundaries) if np.any(which == b)]


def plan_epoch(groups: list[tuple[int, np.ndarray]], batch_size: int,
               steps_per_call: int,
               rng: np.random.Generator | None = None) -> list[Chunk]:
  """Batches each group, packs them into chunks of `steps_per_call` batches.

  With `rng` the examples within each group and the order of the chunks are
  shuffled (training); without, both keep their order (evaluation).
  """
  rows_per_chunk = batch_size * steps_per_call
  chunks = []
  for length, ids in groups:
    if rng is not None:
      ids = rng.permutation(ids)
    num_chunks = -(-len(ids) // rows_per_chunk)
    indices = np.zeros(num_chunks * rows_per_chunk, np.int64)
    weights = np.zeros(num_chunks * rows_per_chunk, np.float32)
    indices[:len(ids)] = ids
    weights[:len(ids)] = 1.0
    shape = (num_chunks, steps_per_call, batch_size)
    chunks += [Chunk(length, i, w) for i, w in
               zip(indices.reshape(shape), weights.reshape(shape))]
  if rng is not None:
    chunks = [chunks[i] for i in rng.permutation(len(chunks))]
  return chunks


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


def distinct_ids(tokens: np.ndarray, num_words: int) -> np.ndarray | None:
  """For each batch of a chunk, ids that cover all its word ids.

  tokens [steps, batch, length] int -> [steps, capacity] int32, or None when
  that would not make the model's input projection cheaper (capacity not
  below num_words or batch * length). Each row holds the batch's distinct ids
  in ascending order, then other ids (projected and unused) up to
  `capacity`: the chunk's largest count of distinct ids, rounded up by
  `id_capacity`.
  """
  steps = tokens.shape[0]
  present = np.zeros((steps, num_words), bool)
  present[np.arange(steps)[:, None], tokens.reshape(steps, -1)] = True
  capacity = id_capacity(present.sum(axis=1).max())
  if capacity >= min(num_words, tokens[0].size):
    return None
  return np.argsort(~present, axis=1, kind="stable")[:, :capacity].astype(
      np.int32)
