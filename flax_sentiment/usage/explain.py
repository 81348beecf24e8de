"""Which words made a review positive or negative: integrated gradients.

Integrated gradients (Sundararajan et al. 2017) on the embeddings explain
the LOGIT (log P(positive) / P(negative)). For a review's embedded tokens x
[seq_len, embed] and a baseline b, position t contributes

  (x_t - b_t) . integral over a in [0, 1] of  d logit(b + a (x - b)) / dx_t,

the integral taken over `steps` points by a rule: "midpoint" (the default:
a = (k + 1/2) / steps), "trapezoid" (a = 0, 1/(steps-1), ..., 1, the ends
weighted half) or "gauss-legendre" (Gauss-Legendre nodes and weights). The
contributions add up to logit(x) - logit(b) (completeness), up to the rule's
error: for the tiny trained LSTMs of tests/test_explain.py under 0.1% at 64
steps for most texts, but up to 1% (midpoint), 1.8% (trapezoid) or 0.04%
(gauss-legendre) for a text whose logit changes sharply along the path;
`Explanation.total` vs `logit - baseline_logit` shows it.

A run of K > 2 classes has no single logit: there the explained score is
the LOG-PROBABILITY of one class, log softmax(logits)[c] — by default each
review's predicted class, or the class asked for (`target`, predict's
`--explain-class NAME`). A word's contribution is then how much it raised
(+) or lowered (-) that class's log-probability, and the contributions add
up to log P(c | review) - log P(c | baseline).

Baselines: "zero" (the default) puts a zero vector in place of every word's
embedding; "padding" the padding token's embedding (for a model that does
not mask padding, that is the review read as if it were empty). Padding
positions keep their embedding in both (they are no word: contribution 0),
and the model reads the same token ids all along the path (masking,
lengths); only the words' embeddings move. The embeddings reach the model
through its `perturbation` input (added to the embedded tokens, as in
adversarial training), so every cell, implementation, masking, direction and
pooling is explained the same way, `embedding.project_tokens` included.

Words are mapped back to positions as `tokenizer.pad_sequences` placed them
(`read_positions`): words cut by `seq_len` (the first ones with
truncating="pre", the last ones with "post") are reported `read=False`
with no contribution; words not in the vocabulary were read as the unknown
id 1 and get a contribution like any other (`known=False`).

In Python:

  from flax_sentiment.usage import predict
  predictor = trained.load_predictor("runs/lstm64")
  for e in predictor.explain(["A wonderful film."], steps=64):
    print(e.logit, e.baseline_logit, [(w.word, w.contribution) for w in e.words])

or from a model and its parameters (e.g. `api.create_state(...).params`):
`explain_texts(model, params, config, vocabulary, texts)`.
`integrated_gradients` is the pure function (jit applied by the caller);
`Explainer` jits it once and runs it in batches. Command line:
`python -m flax_sentiment.usage.predict --workdir runs/lstm64 --explain "..."`.
"""

import dataclasses
import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flax_sentiment.data import tokenizer
from flax_sentiment.model import scoring

BASELINES = ("zero", "padding")
RULES = ("midpoint", "trapezoid", "gauss-legendre")
DEFAULT_STEPS = 64


def settings_problem(steps: int, baseline: str = "zero",
                     rule: str = "midpoint") -> str | None:
  """Why these settings cannot be used, or None."""
  if baseline not in BASELINES:
    return f"baseline must be one of {BASELINES}, got {baseline!r}"
  if rule not in RULES:
    return f"rule must be one of {RULES}, got {rule!r}"
  least = 2 if rule == "trapezoid" else 1
  if not isinstance(steps, int) or steps < least:
    return f"steps must be an integer >= {least} for the {rule} rule, " \
           f"got {steps!r}"
  return None


def path_points(steps: int, rule: str = "midpoint"
                ) -> tuple[np.ndarray, np.ndarray]:
  """(alphas [steps], weights [steps]) of the rule on [0, 1]; the weights
  sum to 1."""
  if rule == "trapezoid":
    alphas = np.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2
  elif rule == "gauss-legendre":
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
  else:
    alphas = (np.arange(steps) + 0.5) / steps
    weights = np.full(steps, 1.0 / steps)
  return alphas.astype(np.float32), weights.astype(np.float32)


def explained_score(logits: jax.Array, targets: jax.Array | None
                    ) -> jax.Array:
  """The score explained: the logit [batch] of a binary model as it is; of
  a K-class model's logits [batch, K], log softmax at `targets` [batch]."""
  if logits.ndim == 1:
    return logits
  log_probabilities = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(log_probabilities, targets[:, None], 1)[:, 0]


def integrated_gradients(model, params: Any, tokens: jax.Array,
                         steps: int = DEFAULT_STEPS, baseline: str = "zero",
                         rule: str = "midpoint",
                         targets: jax.Array | None = None
                         ) -> dict[str, jax.Array]:
  """Integrated gradients of the explained score (`explained_score`: the
  logit, or for K classes a class's log-probability) with respect to the
  embeddings.

  tokens [batch, seq_len] int32 (padding 0), targets [batch] int32 (K
  classes: the class explained, -1 the predicted one; ignored for two) ->
    {"attributions": [batch, seq_len] float32 (0 at padding),
     "logits": [batch] (the score), "baseline_logits": [batch],
     "targets": [batch] (the class explained; 0 for two classes)}.
  The gradients are taken one path point at a time (`lax.scan`): memory is
  that of one backward pass over the batch. Reviews are independent (no
  dropout), so the gradient of the batch's summed logits is each review's.
  """
  table = params["embedding"]["embedding"]  # [num_words, embed]
  time_major = tokens.T  # [seq_len, batch], the model's layout
  x = jnp.take(table, time_major, axis=0)  # [seq_len, batch, embed]
  real = (time_major != tokenizer.PAD_ID)[..., None]
  base = jnp.zeros_like(x) if baseline == "zero" else table[tokenizer.PAD_ID]
  delta = jnp.where(real, x - base, 0.0)  # x - b (b = x at padding)
  logits = model.apply({"params": params}, tokens)
  if targets is None:
    targets = jnp.full(tokens.shape[:1], -1, jnp.int32)
  if logits.ndim == 2:
    targets = jnp.where(targets < 0, jnp.argmax(logits, -1), targets)
  else:
    targets = jnp.zeros_like(targets)
  score = lambda out: explained_score(out, targets)  # pylint: disable=unnecessary-lambda-assignment

  def logit_sum(perturbation):  # the model reads x + perturbation
    return jnp.sum(score(model.apply({"params": params}, tokens,
                                     perturbation=perturbation)))

  def point(total, alpha_weight):
    alpha, weight = alpha_weight
    # b + alpha (x - b) = x + (alpha - 1) (x - b)
    gradient = jax.grad(logit_sum)((alpha - 1.0) * delta)
    return total + weight * gradient, None

  alphas, weights = path_points(steps, rule)
  total, _ = jax.lax.scan(point, jnp.zeros_like(delta),
                          (jnp.asarray(alphas), jnp.asarray(weights)))
  attributions = jnp.sum(delta * total, axis=-1).T  # [batch, seq_len]
  return {"attributions": attributions, "logits": score(logits),
          "baseline_logits": score(model.apply({"params": params}, tokens,
                                               perturbation=-delta)),
          "targets": targets}


class Explainer:
  """`integrated_gradients` jitted once for its settings, over any number
  of reviews in batches of at most `batch_size` (`scoring.in_batches`);
  raises `scoring.NonFiniteScoreError` if a logit is NaN or infinite."""

  def __init__(self, model, params: Any, steps: int = DEFAULT_STEPS,
               baseline: str = "zero", rule: str = "midpoint",
               batch_size: int = scoring.DEFAULT_BATCH_SIZE):
    problem = settings_problem(steps, baseline, rule)
    if problem:
      raise ValueError(problem)
    self.params, self.batch_size = params, batch_size
    self.steps, self.baseline, self.rule = steps, baseline, rule
    self._apply = jax.jit(functools.partial(
        integrated_gradients, model, steps=steps, baseline=baseline,
        rule=rule))

  def __call__(self, tokens: np.ndarray, targets: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
    """tokens [n, seq_len], targets [n] (K classes: the class explained,
    -1 or None the predicted one) -> `integrated_gradients`' dict, numpy
    [n, ...]."""
    if targets is None:
      targets = np.full(len(tokens), -1, np.int32)
    # The targets ride as a last column through the batching.
    rows = np.concatenate([np.asarray(tokens, np.int32),
                           np.asarray(targets, np.int32)[:, None]], axis=1)
    out = scoring.in_batches(
        lambda t: self._apply(self.params, t[:, :-1], targets=t[:, -1]),
        rows, self.batch_size)
    scoring.require_finite(np.concatenate([out["logits"],
                                           out["baseline_logits"]]))
    return out


@dataclasses.dataclass(frozen=True)
class Word:
  """A word of a review: its contribution to the logit (None if not read),
  whether the model read it (within seq_len), whether it is in the
  vocabulary (else read as the unknown id)."""
  word: str
  contribution: float | None
  read: bool
  known: bool


@dataclasses.dataclass(frozen=True)
class Explanation:
  """One review: logit, baseline logit and its words in text order. The
  read words' contributions sum to ~ logit - baseline_logit. For a run of
  K classes `target` names the class explained, and `logit` is its
  log-probability (`baseline_logit` the baseline's)."""
  text: str
  logit: float
  baseline_logit: float
  words: tuple[Word, ...]
  steps: int
  baseline: str
  target: str | None = None

  @property
  def probability(self) -> float:
    """P(positive); for K classes P(target)."""
    if self.target is not None:
      return math.exp(self.logit)
    return 1.0 / (1.0 + math.exp(-self.logit))

  @property
  def total(self) -> float:
    """The sum of the read words' contributions."""
    return float(sum(w.contribution for w in self.words if w.read))

  def as_json(self) -> dict:
    """{"logit", "baseline_logit", "baseline", "steps", "contributions":
    [{"word", "contribution" (null if not read), "read", "known"}, ...]};
    K classes: "explained_class" and "log_probability",
    "baseline_log_probability" in place of the logits."""
    scores = ({"logit": self.logit, "baseline_logit": self.baseline_logit}
              if self.target is None else
              {"explained_class": self.target, "log_probability": self.logit,
               "baseline_log_probability": self.baseline_logit})
    return dict(scores, baseline=self.baseline, steps=self.steps,
                contributions=[dataclasses.asdict(w) for w in self.words])

  def score_note(self) -> str:
    """What the contributions add up to, for a line after them."""
    if self.target is None:
      return f"logit {self.logit:+.2f}, baseline {self.baseline_logit:+.2f}"
    return (f"toward {self.target}: log P {self.logit:+.2f}, baseline "
            f"{self.baseline_logit:+.2f}")


def read_positions(num_words: int, seq_len: int, padding: str = "pre",
                   truncating: str = "pre") -> list[int | None]:
  """Where each of a review's `num_words` words sits in its padded row of
  `seq_len` tokens, as `tokenizer.pad_sequences` places it; None for a word cut
  off (truncating "pre" keeps the last seq_len words, "post" the first)."""
  kept = min(num_words, seq_len)
  first = num_words - kept if truncating == "pre" else 0
  offset = seq_len - kept if padding == "pre" else 0
  return [offset + i - first if first <= i < first + kept else None
          for i in range(num_words)]


def explain_words(explainer: Explainer, texts: Sequence[str],
                  ids: dict[str, int], config,
                  text_rule: tokenizer.Tokenizer | None = None,
                  classes: Sequence[str] | None = None,
                  target: int = -1) -> list[Explanation]:
  """The Explanation of each text, tokenized (`text_rule`, default the
  config's kind) and padded as in training (`config.seq_len`, `.padding`,
  `.truncating`); SentencePiece pieces are joined back into words. A model
  of K > 2 `classes` is explained toward class id `target` (-1: each text's
  predicted class)."""
  split = text_rule or tokenizer.Tokenizer(tokenizer.kind_of(config))
  words = [split(t) for t in texts]
  tokens = tokenizer.words_to_ids(words, ids, config)
  out = explainer(tokens, np.full(len(texts), target, np.int32))
  explanations = []
  for i, (text, ws) in enumerate(zip(texts, words)):
    row = out["attributions"][i]
    places = read_positions(len(ws), config.seq_len, config.padding,
                            config.truncating)
    explanations.append(Explanation(
        text=text, logit=float(out["logits"][i]),
        baseline_logit=float(out["baseline_logits"][i]),
        words=_whole_words(
            tuple(Word(w, None if t is None else float(row[t]),
                       t is not None, w in ids)
                  for w, t in zip(ws, places)), split.kind),
        steps=explainer.steps, baseline=explainer.baseline,
        target=classes[out["targets"][i]] if classes else None))
  return explanations


PIECE_WORD_START = "\u2581"  # SentencePiece's mark of a word's first piece


def _whole_words(pieces: tuple[Word, ...], kind: str) -> tuple[Word, ...]:
  """Subwords: the pieces of each word joined back into it, its
  contribution the sum over its read pieces (None if none was read), known
  if every piece is. Other kinds: as they are."""
  if kind != "subwords":
    return pieces
  groups = []
  for piece in pieces:
    if not groups or piece.word.startswith(PIECE_WORD_START):
      groups.append([])
    groups[-1].append(piece)
  words = []
  for group in groups:
    read = [p.contribution for p in group if p.read]
    text = "".join(p.word for p in group).lstrip(PIECE_WORD_START)
    if not text:  # a lone word-start piece before a character SentencePiece
      continue    # did not join to it carries nothing of its own
    words.append(Word(text, sum(read) if read else None, bool(read),
                      all(p.known for p in group)))
  return tuple(words)


def explain_texts(model, params: Any, config, vocabulary: Sequence[str],
                  texts: Sequence[str], steps: int = DEFAULT_STEPS,
                  baseline: str = "zero", rule: str = "midpoint",
                  batch_size: int = scoring.DEFAULT_BATCH_SIZE,
                  text_rule: tokenizer.Tokenizer | None = None
                  ) -> list[Explanation]:
  """The Explanation of each text for a model and its parameters (compiles
  once per call: to explain many batches keep an `Explainer`, or use
  `trained.load_predictor(workdir).explain`)."""
  explainer = Explainer(model, params, steps, baseline, rule, batch_size)
  return explain_words(explainer, texts, tokenizer.word_ids(vocabulary),
                       config, text_rule)


# 256-colour terminal palette, weakest to strongest.
_GREENS = (151, 114, 77, 40, 46)
_REDS = (224, 217, 210, 203, 196)


def _colored(word: str, contribution: float, scale: float) -> str:
  level = min(len(_GREENS) - 1,
              int(abs(contribution) / scale * len(_GREENS))) if scale else 0
  code = (_GREENS if contribution >= 0 else _REDS)[level]
  return f"\x1b[38;5;{code}m{word}\x1b[0m"


def render(explanation: Explanation, color: bool = False) -> str:
  """The words in text order: with `color` (a terminal) green positive,
  red negative, brighter the larger (relative to the review's largest);
  else `good[+0.83] film[-0.02]`. A run of unread words is one
  `[N words not read]`."""
  read = [abs(w.contribution) for w in explanation.words if w.read]
  scale = max(read, default=0.0)
  parts, unread = [], 0
  for w in explanation.words + (None,):
    if w is not None and not w.read:
      unread += 1
      continue
    if unread:
      note = f"[{unread:,} word{'s' if unread > 1 else ''} not read]"
      parts.append(f"\x1b[2m{note}\x1b[0m" if color else note)
      unread = 0
    if w is not None:
      parts.append(_colored(w.word, w.contribution, scale) if color
                   else f"{w.word}[{w.contribution:+.2f}]")
  return " ".join(parts)
