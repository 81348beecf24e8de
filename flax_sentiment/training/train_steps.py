"""The pure, jit-able pieces of training: state, optimizer, steps, chunks.

`train_step(state, batch)` and `eval_step(state, batch)` work on one batch:
  batch = {"tokens": [batch, len] int32, "labels": [batch] f32,
           "weights": [batch] f32 (0 for filler rows),
           optional "distinct_ids": [num_ids] int32 covering the tokens' ids;
           with virtual adversarial training also "unlabeled_tokens"
           [batch, len] int32 and "unlabeled_weights" [batch] f32, which
           "distinct_ids" then covers too}.
`train_chunk` / `eval_chunk` scan them over a chunk, the same dict with a
leading [steps] axis. Nothing here is jitted: the caller (`feeding.py`, the
benchmark, the tests) applies `jax.jit`. The metrics are defined in
`metrics.py`; the epoch loop lives in `loop.py`.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from flax_sentiment.model import classifier, region_cnn
from flax_sentiment.tracking import metrics

Batch = dict[str, jax.Array]
Metrics = metrics.Sums


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the key that dropout masks are folded from
  (with the step number, so a resumed run draws the same masks), and the
  (virtual) adversarial training radii (static; 0: off)."""
  dropout_key: jax.Array = None
  adversarial_epsilon: float = struct.field(pytree_node=False, default=0.0)
  virtual_adversarial_epsilon: float = struct.field(pytree_node=False,
                                                    default=0.0)
  virtual_adversarial_xi: float = struct.field(pytree_node=False,
                                               default=0.05)
  # The loss weight of each class (`class_weights`); () for none.
  class_weights: tuple = struct.field(pytree_node=False, default=())


def class_weights(value: str, labels, num_classes: int) -> tuple:
  """The loss weight of each class: () for none (""), n / (K n_k) for
  "balanced" (each class weighs as much in total), or the comma-separated
  weights given, one per class in class order (ValueError otherwise).
  labels [n] class ids of the train reviews."""
  if not value:
    return ()
  if value == "balanced":
    counts = jnp.bincount(jnp.asarray(labels, jnp.int32), length=num_classes)
    return tuple(float(len(labels) / (num_classes * max(int(c), 1)))
                 for c in counts)
  weights = tuple(float(w) for w in value.split(","))
  if len(weights) != num_classes or min(weights) <= 0:
    raise ValueError(f"{num_classes} positive weights")
  return weights


def learning_rate_schedule(config, total_steps: int) -> optax.Schedule:
  """Constant (the notebook), or linear warmup then cosine/linear decay to
  zero after `total_steps` (the train steps the run's plans execute:
  `feeding.Feeds.total_steps`)."""
  if config.lr_schedule == "constant":
    return optax.constant_schedule(config.learning_rate)
  total = max(1, total_steps)
  warmup = min(int(config.warmup_steps), total - 1)
  decay = {"cosine": optax.cosine_decay_schedule,
           "linear": lambda value, steps: optax.linear_schedule(value, 0.0,
                                                                steps)}
  return optax.join_schedules(
      [optax.linear_schedule(0.0, config.learning_rate, warmup),
       decay[config.lr_schedule](config.learning_rate, total - warmup)],
      [warmup])


def make_optimizer(config, total_steps: int = 1
                   ) -> optax.GradientTransformation:
  """Adam with Keras's epsilon (1e-7), as in the notebook; optionally
  gradient clipping by global norm, a schedule, and AdamW weight decay."""
  rate = learning_rate_schedule(config, total_steps)
  decay = config.weight_decay
  adam = (optax.adamw(rate, eps=1e-7, weight_decay=decay) if decay
          else optax.adam(rate, eps=1e-7))
  clip = config.clip_grad_norm
  tx = optax.chain(optax.clip_by_global_norm(clip), adam) if clip else adam
  if config.region_embedding_dim:
    return optax.multi_transform(
        {"trained": tx, "fixed": optax.set_to_zero()}, _fixed_or_trained)
  return tx


def _fixed_or_trained(params: dict) -> dict:
  """The optimizer's label of every parameter: "fixed" in the region
  embedding (learned before, from unlabeled text), else "trained"."""
  return {name: jax.tree.map(
      lambda _, fixed=name == region_cnn.FIXED: "fixed" if fixed else "trained",
      subtree) for name, subtree in params.items()}


def create_train_state(model: classifier.SentimentClassifier, config,
                       rng: jax.Array, total_steps: int = 1) -> TrainState:
  """Parameters from `model.init`, the optimizer (its schedule sized to
  `total_steps`), and the dropout key."""
  tokens = jnp.zeros((1, config.seq_len), jnp.int32)
  params = model.init(rng, tokens)["params"]
  return TrainState.create(
      apply_fn=model.apply, params=params,
      tx=make_optimizer(config, total_steps),
      dropout_key=jax.random.key_data(jax.random.fold_in(rng, 1)),
      adversarial_epsilon=float(config.adversarial_epsilon),
      virtual_adversarial_epsilon=float(config.virtual_adversarial_epsilon),
      virtual_adversarial_xi=float(config.virtual_adversarial_xi))


def _metric_sums(logits: jax.Array, batch: Batch) -> tuple[jax.Array, Metrics]:
  return metrics.batch_sums(logits, batch["labels"], batch["weights"])


def _logits(apply_fn, params, batch: Batch, dropout_rng=None,
            perturbation=None) -> jax.Array:
  """Training mode (dropout on) when given `dropout_rng`; `perturbation`
  [seq_len, batch, embed] is added to the embedded tokens."""
  extra = {} if perturbation is None else {"perturbation": perturbation}
  if dropout_rng is None:
    return apply_fn({"params": params}, batch["tokens"],
                    batch.get("distinct_ids"), **extra)
  return apply_fn({"params": params}, batch["tokens"],
                  batch.get("distinct_ids"), deterministic=False,
                  rngs={"dropout": dropout_rng}, **extra)


def per_review_l2(x: jax.Array, norm: float) -> jax.Array:
  """x [seq_len, batch, embed] scaled to L2 norm `norm` per review (over
  the whole sequence); reviews where x is zero stay zero."""
  length = jnp.sqrt(jnp.sum(jnp.square(x), axis=(0, 2), keepdims=True))
  return norm * x / jnp.maximum(length, 1e-12)


def adversarial_perturbation(gradient: jax.Array,
                             epsilon: float) -> jax.Array:
  """gradient [seq_len, batch, embed] of the loss w.r.t. the embedded tokens
  -> the perturbation of norm `epsilon` per review (L2 over the whole
  sequence) along it, the direction that raises the loss most to first
  order (Miyato et al. 2017). Reviews with a zero gradient (filler rows)
  get none."""
  return per_review_l2(gradient, epsilon)


def prediction_kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
  """KL(p || q) [batch] of the model's distributions: Bernoulli of logits
  [batch] (two classes), categorical of logits [batch, K]."""
  if logits_p.ndim == 1:
    return bernoulli_kl(logits_p, logits_q)
  log_p = jax.nn.log_softmax(logits_p)
  return jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(logits_q)),
                 axis=-1)


def bernoulli_kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
  """KL(p || q) [batch] of the Bernoulli distributions sigmoid(logits_p),
  sigmoid(logits_q) [batch], computed from the logits (stable at any
  size)."""
  p = jax.nn.sigmoid(logits_p)
  return (p * (jax.nn.log_sigmoid(logits_p) - jax.nn.log_sigmoid(logits_q))
          + (1 - p) * (jax.nn.log_sigmoid(-logits_p)
                       - jax.nn.log_sigmoid(-logits_q)))


def virtual_adversarial_perturbation(
    logits_of, clean_logits: jax.Array, tokens: jax.Array, embed_dim: int,
    xi: float, epsilon: float, rng: jax.Array) -> jax.Array:
  """The direction of norm `epsilon` per review that changes the model's
  prediction most (Miyato et al. 2017), by one power iteration: a random
  direction d of norm `xi` (on the real tokens only), then the gradient of
  KL(clean || perturbed by d) w.r.t. d, scaled to `epsilon`.

  logits_of(perturbation [seq_len, batch, embed]) -> logits [batch] (or
  [batch, K]); clean_logits alike (held constant); tokens [batch, seq_len] (0 =
  padding: no random direction there; all-padding filler rows get none).
  Returns [seq_len, batch, embed], no gradient flowing back through it.
  """
  real = (tokens.T != 0)[..., None]  # [seq_len, batch, 1]
  noise = jax.random.normal(rng, real.shape[:2] + (embed_dim,)) * real
  clean = jax.lax.stop_gradient(clean_logits)

  def divergence(d):
    return jnp.sum(prediction_kl(clean, logits_of(d)))
  gradient = jax.grad(divergence)(per_review_l2(noise, xi))
  return jax.lax.stop_gradient(per_review_l2(gradient, epsilon))


def _virtual_adversarial_grads(state: TrainState, batch: Batch,
                               rng: jax.Array):
  """Gradients of the virtual adversarial loss on the batch's unlabeled
  reviews: the weighted mean KL between the model's prediction on each and
  on it moved by `virtual_adversarial_perturbation` (the clean prediction
  held constant). One dropout mask (from `rng`) for all three passes."""
  unlabeled = {"tokens": batch["unlabeled_tokens"],
               "distinct_ids": batch.get("distinct_ids")}
  weights = batch["unlabeled_weights"]
  embed_dim = state.params["embedding"]["embedding"].shape[1]

  def logits_of(params, perturbation=None):
    return _logits(state.apply_fn, params, unlabeled, rng, perturbation)
  clean = logits_of(state.params)
  direction = virtual_adversarial_perturbation(
      functools.partial(logits_of, state.params), clean,
      batch["unlabeled_tokens"], embed_dim, state.virtual_adversarial_xi,
      state.virtual_adversarial_epsilon, jax.random.fold_in(rng, 1))

  def loss(params):
    kl = prediction_kl(jax.lax.stop_gradient(clean),
                      logits_of(params, direction))
    return jnp.sum(kl * weights) / jnp.maximum(jnp.sum(weights), 1.0)
  return jax.grad(loss)(state.params)


def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
  """One optimizer step on the weighted mean binary cross-entropy; dropout
  (if the model has any) draws from `dropout_key` folded with the step.

  With `state.adversarial_epsilon` > 0 the loss is that of the batch plus
  that of the batch with its embedded tokens perturbed adversarially
  (`adversarial_perturbation`; the metrics stay those of the clean batch).
  With `state.virtual_adversarial_epsilon` > 0 it also adds the virtual
  adversarial loss of the batch's unlabeled reviews
  (`_virtual_adversarial_grads`, their own dropout mask).
  """
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.dropout_key),
                           state.step)

  def loss_fn(params, perturbation=None):
    logits = _logits(state.apply_fn, params, batch, rng, perturbation)
    loss, sums = _metric_sums(logits, batch)
    if state.class_weights:  # the metrics stay unweighted
      by_class = jnp.asarray(state.class_weights, jnp.float32)[
          batch["labels"].astype(jnp.int32)]
      loss = metrics.batch_sums(logits, batch["labels"],
                                batch["weights"] * by_class)[0]
    return loss, sums

  if not state.adversarial_epsilon:
    grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  else:
    embed_dim = state.params["embedding"]["embedding"].shape[1]
    zeros = jnp.zeros(batch["tokens"].shape[::-1] + (embed_dim,),
                      jnp.float32)
    (grads, to_inputs), sums = jax.grad(loss_fn, argnums=(0, 1),
                                        has_aux=True)(state.params, zeros)
    perturbation = adversarial_perturbation(to_inputs,
                                            state.adversarial_epsilon)
    adversarial_grads, _ = jax.grad(loss_fn, has_aux=True)(state.params,
                                                           perturbation)
    grads = jax.tree.map(jnp.add, grads, adversarial_grads)
  if state.virtual_adversarial_epsilon:
    grads = jax.tree.map(jnp.add, grads, _virtual_adversarial_grads(
        state, batch, jax.random.fold_in(rng, 2)))
  return state.apply_gradients(grads=grads), sums


def eval_step(state: TrainState, batch: Batch
              ) -> tuple[Metrics, jax.Array]:
  """The batch's metric sums and its logits [batch] (K classes: [batch,
  K]) float32."""
  logits = _logits(state.apply_fn, state.params, batch).astype(jnp.float32)
  return _metric_sums(logits, batch)[1], logits


def train_chunk(state: TrainState, chunk: Batch) -> tuple[TrainState, Metrics]:
  """`train_step` over [steps, ...]; all-filler batches leave `state` as is.

  Returns the new state and per-step metric sums, each [steps].
  """
  def step(state, batch):
    return jax.lax.cond(jnp.any(batch["weights"] > 0), train_step,
                        lambda s, _: (s, metrics.zero_sums()), state, batch)
  return jax.lax.scan(step, state, chunk)


def eval_chunk(state: TrainState, chunk: Batch
               ) -> tuple[Metrics, jax.Array]:
  """`eval_step` over [steps, ...]: per-step metric sums (each [steps]) and
  the logits [steps, batch] ([steps, batch, K] for K classes; zeros for
  all-filler steps, which are skipped)."""
  def skipped(_, batch):  # logits [batch] or [batch, K], as eval_step's
    shape = jax.eval_shape(eval_step, state, batch)[1]
    return metrics.zero_sums(), jnp.zeros(shape.shape, jnp.float32)

  def step(_, batch):
    return None, jax.lax.cond(jnp.any(batch["weights"] > 0), eval_step,
                              skipped, state, batch)
  return jax.lax.scan(step, None, chunk)[1]
