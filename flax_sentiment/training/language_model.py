"""Language-model pretraining of a classifier's embedding and recurrences.

`--config.pretrain_lm_epochs=N` (0: off) trains, before the classifier,
the run's own embedding and recurrent layers as a language model on the
text word2vec reads (`datasets.ImdbData.pretraining_ids`: the train reviews
kept for training plus the unlabeled reviews — never validation or test
text): the forward recurrence's state at token t predicts token t+1 and,
for a bidirectional model, the backward one's predicts token t-1 (Dai & Le
2015; Miyato et al. 2017 pretrain the same way). Each direction has its
own output layer [num_words, hidden], scored with a sampled softmax
(`sampled_softmax_loss`: `lm_sampled_words` candidates a step, drawn from
the unigram distribution to the power 0.75, corrected by their expected
counts). The classifier then starts from the pretrained embedding and
recurrent weights; its dense layer (and with them its seed) stays fresh.

Reviews are cut into pieces of `seq_len` tokens from their start (whole
reviews, not only their last `seq_len` tokens), padded at the end, batched
by length (`length_buckets`), and trained with Adam (warmup, cosine decay,
gradients clipped to 1.0). Dropout is off. The result does not depend on
the run's seed, so every seed of a recipe shares it: it is cached in the
cache directory, keyed by the text and every setting that shapes it, and
after every epoch the optimizer state is saved there too (and at the step
a SIGTERM or Ctrl-C stops it: one line, exit 128 + the signal), so a
stopped pretraining resumes where it stopped and a killed one at its last
finished epoch, ending as an uninterrupted one would.
"""

import functools
import pathlib
import signal
import time
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from flax_sentiment.data import batching, datasets, word_vectors
from flax_sentiment.model import classifier
from flax_sentiment.training import signals
from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import UserError

SEED = 0             # the pretraining is the same for every seed of a run
UNIGRAM_POWER = 0.75  # candidates ~ count^0.75 (word2vec's distribution)
WARMUP_STEPS = 200
CLIP_NORM = 1.0
MIN_PIECE = 2         # a piece must hold a token to predict
FORMAT_VERSION = 1

Params = dict


def pieces(ids: list[np.ndarray], length: int) -> np.ndarray:
  """Reviews' ids cut into consecutive pieces of at most `length` tokens
  (the last piece of a review shorter; pieces under MIN_PIECE tokens
  dropped), padded at the end: [pieces, length] int32."""
  cut = [review[start:start + length] for review in ids
         for start in range(0, len(review), length)]
  cut = [piece for piece in cut if len(piece) >= MIN_PIECE]
  out = np.zeros((len(cut), length), np.int32)
  for row, piece in enumerate(cut):
    out[row, :len(piece)] = piece
  return out


def log_expected_counts(ids: list[np.ndarray], num_words: int,
                        candidates: int) -> np.ndarray:
  """[num_words] float32: log of each word's expected count among
  `candidates` draws with replacement from count^UNIGRAM_POWER (every word
  counted at least once, so that each has a finite value)."""
  counts = np.bincount(np.concatenate(ids), minlength=num_words)[:num_words]
  weights = np.maximum(counts, 1).astype(np.float64) ** UNIGRAM_POWER
  return np.log(candidates * weights / weights.sum()).astype(np.float32)


def sampled_softmax_loss(states: jax.Array, targets: jax.Array,
                         kernel: jax.Array, bias: jax.Array,
                         candidates: jax.Array, log_expected: jax.Array
                         ) -> jax.Array:
  """Sampled-softmax cross-entropy of each state's target word.

  states [n, hidden], targets [n] word ids, kernel [num_words, hidden],
  bias [num_words], candidates [k] word ids sampled for the whole batch,
  log_expected [num_words] (`log_expected_counts`) -> loss [n]: the
  cross-entropy over {target} + candidates, every logit lowered by the log
  of its word's expected count; a candidate equal to the row's target is
  left out (an "accidental hit").
  """
  true_logit = (jnp.sum(states * kernel[targets], axis=-1) + bias[targets]
                - log_expected[targets])
  sampled = (states @ kernel[candidates].T + bias[candidates]
             - log_expected[candidates])
  sampled = jnp.where(candidates[None, :] == targets[:, None], -jnp.inf,
                      sampled)
  logits = jnp.concatenate([true_logit[:, None], sampled], axis=1)
  return jax.nn.logsumexp(logits, axis=1) - true_logit


def lm_loss(params: Params, model: classifier.SentimentClassifier,
            tokens: jax.Array, distinct_ids: jax.Array | None,
            candidates: jax.Array, log_expected: jax.Array
            ) -> tuple[jax.Array, jax.Array]:
  """(mean loss, predictions counted) of one batch.

  tokens [batch, length], padded (id 0) at the end; all-padding rows count
  nothing. The forward states predict the next token, the backward ones
  (bidirectional models) the previous one; only real tokens predict, and
  only real tokens are predicted.
  """
  states = model.apply({"params": params["classifier"]}, tokens,
                       distinct_ids, return_states=True)
  time_major = tokens.T  # [length, batch]
  pad = jnp.zeros_like(time_major[:1])
  neighbours = {"forward": jnp.concatenate([time_major[1:], pad]),
                "backward": jnp.concatenate([pad, time_major[:-1]])}
  total, count = jnp.zeros(()), jnp.zeros(())
  for direction, direction_states in zip(("forward", "backward"), states):
    targets = neighbours[direction]
    predicts = (time_major != 0) & (targets != 0)
    head = params["head"][direction]
    losses = sampled_softmax_loss(
        direction_states.reshape(-1, direction_states.shape[-1]),
        targets.reshape(-1), head["kernel"], head["bias"], candidates,
        log_expected)
    total += jnp.sum(jnp.where(predicts.reshape(-1), losses, 0.0))
    count += jnp.sum(predicts)
  return total / jnp.maximum(count, 1.0), count


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, config.lm_learning_rate, min(WARMUP_STEPS, total_steps // 2),
      max(total_steps, 1))
  return optax.chain(optax.clip_by_global_norm(CLIP_NORM),
                     optax.adam(schedule))


def train_step(params: Params, opt_state, tokens: jax.Array,
               distinct_ids: jax.Array | None, key: jax.Array,
               log_expected: jax.Array, *, model, optimizer,
               sampled_words: int):
  """One Adam step on one batch: (params, opt_state, loss, count). Pure:
  jit it with model, optimizer and sampled_words static (or bound)."""
  candidates = jax.random.categorical(
      key, log_expected, shape=(sampled_words,))
  (loss, count), grads = jax.value_and_grad(lm_loss, has_aux=True)(
      params, model, tokens, distinct_ids, candidates, log_expected)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, count


def init_params(model: classifier.SentimentClassifier, config,
                embedding: np.ndarray | None) -> Params:
  """{"classifier": the embedding and recurrences (no dense layer), from
  `model.init` with SEED, the embedding replaced by `embedding` if given;
  "head": {"forward", "backward"}: {"kernel" [num_words, hidden], "bias"
  [num_words]}}."""
  key = jax.random.key(SEED)
  encoder = model.init(key, jnp.zeros((1, config.seq_len), jnp.int32))
  encoder = dict(flax.core.unfreeze(encoder["params"]))
  encoder.pop("dense")
  if embedding is not None:
    encoder["embedding"] = {"embedding": jnp.asarray(embedding)}
  directions = ("forward", "backward") if model.bidirectional else (
      "forward",)
  scale = config.hidden_dim ** -0.5
  head = {d: {"kernel": scale * jax.random.normal(
              jax.random.fold_in(key, i + 1),
              (config.num_words, config.hidden_dim)),
              "bias": jnp.zeros((config.num_words,))}
          for i, d in enumerate(directions)}
  return {"classifier": encoder, "head": head}


def cache_key(ids: list[np.ndarray], config) -> str:
  """Hex digest of the text and every setting the pretrained weights
  depend on (not the seed: SEED fixes the pretraining's own)."""
  settings = (FORMAT_VERSION, SEED, config.cell, config.num_words,
              config.embed_dim, config.hidden_dim, config.bidirectional,
              config.num_layers, config.seq_len, config.length_buckets,
              config.pretrained_embeddings, config.pretrain_lm_epochs,
              config.lm_sampled_words, config.lm_batch_size,
              float(config.lm_learning_rate))
  return word_vectors.text_digest(ids, settings)


def _write_atomic_bytes(path: pathlib.Path, content: bytes) -> None:
  files.write_atomic(path, content, flag="--config.cache_dir",
                     skip_unchanged=False)


def epoch_plans(lengths: np.ndarray, config, epochs: int
                ) -> list[list[batching.Chunk]]:
  """Each epoch's batches (one per chunk), shuffled by (SEED, epoch)."""
  boundaries = batching.bucket_boundaries(
      lengths, config.length_buckets, config.seq_len)
  groups = batching.group_by_bucket(lengths, boundaries)
  return [batching.plan_epoch(groups, config.lm_batch_size, 1,
                              batching.epoch_rng(SEED, epoch), lengths)
          for epoch in range(epochs)]


def pretrained_params(config, ids: list[np.ndarray],
                      embedding: np.ndarray | None,
                      say: Callable[[str], None] = lambda message: None
                      ) -> Params:
  """The classifier's pretrained embedding and recurrences (a params
  subtree: "embedding", "rnn", ...): from the cache, or `train`ed now
  (resuming its snapshot if one is cached) and cached."""
  cache_dir = pathlib.Path(config.cache_dir or datasets.default_cache_dir())
  key = cache_key(ids, config)
  final = cache_dir / f"language_model_{key}.msgpack"
  snapshot = cache_dir / f"language_model_{key}.epochs.msgpack"
  if final.exists():
    say(f"Loaded the pretrained language model from the cache {final}")
    model = classifier.model_from_config(config).clone(implementation="hoisted")
    return _read(final, init_params(model, config, embedding)["classifier"])
  if jax.process_count() > 1:
    raise UserError(
        f"config.pretrain_lm_epochs={config.pretrain_lm_epochs}: the "
        f"language model is not in the cache ({final}) and is pretrained in "
        f"one process; run this config once without --config.num_processes "
        f"(same cache_dir), then start the processes again")
  params = train(config, ids, embedding, snapshot, say)
  _write_atomic_bytes(final, flax.serialization.to_bytes(
      params["classifier"]))
  snapshot.unlink(missing_ok=True)
  return params["classifier"]


def _plan(config, ids: list[np.ndarray]):
  """(model, tokens [pieces, seq_len], per-epoch plans, distinct-word
  capacities, log expected counts of the sampled words) of a run."""
  model = classifier.model_from_config(config).clone(implementation="hoisted")
  tokens = pieces(ids, config.seq_len)
  plans = epoch_plans((tokens != 0).sum(axis=1), config,
                      config.pretrain_lm_epochs)
  capacities = batching.id_capacities(tokens, plans, config.num_words,
                                      config.project_distinct_words)
  log_expected = jnp.asarray(log_expected_counts(
      ids, config.num_words, config.lm_sampled_words))
  return model, tokens, plans, capacities, log_expected


def _start_line(config, tokens: np.ndarray, plans: list) -> str:
  return (f"Pretraining the language model: {len(tokens):,} pieces of <= "
          f"{config.seq_len} tokens ({int((tokens != 0).sum()):,} tokens), "
          f"{config.pretrain_lm_epochs} epochs of {len(plans[0]):,} steps, "
          f"{config.lm_sampled_words} sampled words a step (once, cached) "
          f"...")


def _loss_line(epoch: int, epochs: int, loss_sum: jax.Array,
               count_sum: jax.Array, detail: str = "") -> str:
  return (f"language model epoch {epoch + 1}/{epochs}: {detail}"
          f"sampled-softmax loss "
          f"{float(loss_sum / jnp.maximum(count_sum, 1)):.3f}")


def _resume(snapshot: pathlib.Path | None, params: Params, opt_state,
            total_steps: int, say: Callable[[str], None]):
  """(params, opt_state, steps done) from `snapshot` if one is there, else
  the given ones and 0."""
  if snapshot is None or not snapshot.exists():
    return params, opt_state, 0
  saved = _read(snapshot, {"params": params, "opt_state": opt_state,
                           "steps_done": 0})
  done = int(saved["steps_done"])
  say(f"Resuming the language-model pretraining after step {done} of "
      f"{total_steps} ({snapshot})")
  return saved["params"], saved["opt_state"], done


def _batch(chunk: batching.Chunk, tokens: np.ndarray, config,
           capacities: dict) -> tuple[np.ndarray, np.ndarray | None]:
  """A one-step chunk's tokens [1, batch, length] (filler rows zero) and
  its distinct-word ids (None without distinct-word projection)."""
  batch = batching.chunk_tokens(chunk, tokens)
  batch = np.where(chunk.weights[..., None] > 0, batch, 0)
  distinct = batching.distinct_ids(batch, config.num_words,
                                   capacities.get(chunk.length))
  return batch, distinct


def train(config, ids: list[np.ndarray], embedding: np.ndarray | None,
          snapshot: pathlib.Path | None = None,
          say: Callable[[str], None] = lambda message: None) -> Params:
  """Pretrains for `pretrain_lm_epochs` epochs from `init_params` (the
  embedding from `embedding` if given); returns every parameter (the
  classifier's and the heads). With `snapshot`, the parameters and
  optimizer state are written there after each epoch but the last and when
  a SIGTERM/SIGINT stops it (`signals.Interrupted`), and a snapshot found
  there is resumed."""
  model, tokens, plans, capacities, log_expected = _plan(config, ids)
  params = init_params(model, config, embedding)
  epochs, total_steps = config.pretrain_lm_epochs, sum(map(len, plans))
  optimizer = make_optimizer(config, total_steps)
  opt_state = optimizer.init(params)
  params, opt_state, done = _resume(snapshot, params, opt_state,
                                    total_steps, say)
  step = jax.jit(functools.partial(
      train_step, model=model, optimizer=optimizer,
      sampled_words=config.lm_sampled_words), donate_argnums=(0, 1))
  say(_start_line(config, tokens, plans))

  def save(steps_done: int) -> None:
    if snapshot is not None:
      _write_atomic_bytes(snapshot, flax.serialization.to_bytes(
          {"params": params, "opt_state": opt_state,
           "steps_done": steps_done}))

  steps_before = 0
  with signals.StopSignals() as stop:
    for epoch in range(epochs):
      first = max(done - steps_before, 0)  # resumed mid-epoch: skip
      if first >= len(plans[epoch]):
        steps_before += len(plans[epoch])
        continue
      start = last_said = time.perf_counter()
      # On device: a float() here would wait for every step to finish.
      loss_sum, count_sum = jnp.zeros(()), jnp.zeros(())
      for i in range(first, len(plans[epoch])):
        batch, distinct = _batch(plans[epoch][i], tokens, config,
                                 capacities)
        rng = jax.random.fold_in(jax.random.key(SEED), steps_before + i)
        params, opt_state, loss, count = step(
            params, opt_state, batch[0],
            None if distinct is None else distinct[0], rng, log_expected)
        loss_sum, count_sum = loss_sum + loss * count, count_sum + count
        if stop.arrived:
          save(steps_before + i + 1)
          raise _interrupted(stop.signum, steps_before + i + 1, total_steps,
                             snapshot)
        if time.perf_counter() - last_said >= config.progress_every_seconds:
          last_said = time.perf_counter()
          say(_loss_line(epoch, epochs, loss_sum, count_sum,
                         f"step {i + 1}/{len(plans[epoch])}, "))
      steps_before += len(plans[epoch])
      seconds = time.perf_counter() - start
      say(_loss_line(epoch, epochs, loss_sum, count_sum) + f", "
          f"{float(count_sum) / seconds:,.0f} predicted tokens/s "
          f"({seconds:.0f}s)")
      if epoch + 1 < epochs:
        save(steps_before)
  return jax.device_get(params)


def _interrupted(signum: int, steps_done: int, total_steps: int,
                 snapshot: pathlib.Path | None) -> signals.Interrupted:
  name = signal.Signals(signum).name
  where = (f"saved in {snapshot}. Run the same command again to resume."
           if snapshot is not None else "not saved (no snapshot path).")
  return signals.Interrupted(signum, (
      f"Stopped by {name} during the language-model pretraining at step "
      f"{steps_done} of {total_steps}; its state is {where}"))


def _read(path: pathlib.Path, template):
  """flax.serialization.from_bytes of a cache file, or a UserError naming
  it and the fix if it is damaged."""
  try:
    return flax.serialization.from_bytes(template, path.read_bytes())
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(
        f"{path} is damaged ({type(e).__name__}); delete it and the "
        f"language model is pretrained again") from e
