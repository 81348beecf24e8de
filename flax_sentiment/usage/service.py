"""A trained model behind serve's JSON API, without HTTP: a request's
fields parsed and checked (`parse_request`), the model of a workdir or an
export (`WorkdirModel`, `ExportModel`, `load_model`) and `Service`, which
answers POST /predict's body with one prediction record per text
(`exported.prediction_record`, as predict --json and the loader give
them: for a run of K > 2 classes the most probable class and every class's
probability). `serve` puts it on HTTP."""

import json
import math
import threading
from typing import Any, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import labels
from flax_sentiment.model import scoring
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.usage import explain, exported

MAX_BODY_BYTES = 1 << 20  # a larger POST body gets 413
MAX_TEXTS = 64  # texts per request
MAX_TEXT_CHARS = 20_000  # characters per text
MAX_STEPS = 256  # integration steps per explanation
REQUEST_FIELDS = ("texts", "explain", "steps")
WARM_UP_TEXT = "a good film"
EXPORT_CANNOT_EXPLAIN = (
    "word contributions need the trained workdir (integrated gradients "
    "differentiate the model; an export only scores): start the server "
    "with --workdir RUN instead of --export")


class BadRequest(ValueError):
  """A request this server refuses (HTTP `status`, 400 by default)."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class ModelError(RuntimeError):
  """The model cannot answer a request it accepted (a NaN or infinite
  score): HTTP 500."""


def parse_request(body: bytes) -> dict[str, Any]:
  """A POST /predict body -> {"texts": list[str], "explain": bool,
  "steps": int}; BadRequest naming what is wrong."""
  try:
    request = json.loads(body.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise BadRequest(f"the body is not UTF-8 (byte {e.start}); send JSON "
                     f'like {{"texts": ["A wonderful film."]}}') from None
  except (ValueError, RecursionError) as e:
    raise BadRequest(f"the body is not JSON ({str(e)[:100]}); send JSON "
                     f'like {{"texts": ["A wonderful film."]}}') from None
  if not isinstance(request, dict):
    raise BadRequest(f"the body must be a JSON object, got "
                     f'{type(request).__name__}; send {{"texts": [...]}}')
  unknown = sorted(set(request) - set(REQUEST_FIELDS))
  if unknown:
    raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                     f"the fields are {', '.join(REQUEST_FIELDS)}")
  if "texts" not in request:
    raise BadRequest('no "texts"; send {"texts": ["A wonderful film."]}')
  texts = request["texts"]
  if not isinstance(texts, list) or not all(isinstance(t, str)
                                            for t in texts):
    raise BadRequest('"texts" must be a list of strings, e.g. '
                     '["A wonderful film.", "Dull."]')
  if not texts:
    raise BadRequest('"texts" is empty; send at least one text')
  if len(texts) > MAX_TEXTS:
    raise BadRequest(f'"texts" holds {len(texts)} texts, at most '
                     f"{MAX_TEXTS} are scored per request; send fewer")
  for i, text in enumerate(texts):
    if len(text) > MAX_TEXT_CHARS:
      raise BadRequest(f"text {i} has {len(text):,} characters, at most "
                       f"{MAX_TEXT_CHARS:,} are allowed; shorten it")
  explaining = request.get("explain", False)
  if not isinstance(explaining, bool):
    raise BadRequest(f'"explain" must be true or false, got '
                     f"{json.dumps(explaining)[:40]}")
  steps = request.get("steps", explain.DEFAULT_STEPS)
  if (not isinstance(steps, int) or isinstance(steps, bool)
      or not 1 <= steps <= MAX_STEPS):
    raise BadRequest(f'"steps" must be an integer from 1 to {MAX_STEPS}, '
                     f"got {json.dumps(steps)[:40]}")
  return {"texts": texts, "explain": explaining, "steps": steps}


def _reads(truncating: str, seq_len: int) -> str:
  which = "last" if truncating == "pre" else "first"
  return f"reads the {which} {seq_len} words"


class WorkdirModel:
  """A trained workdir's `trained.Predictor`: scores and explanations.
  `classes`: the names of K > 2 classes (scores [n, K]), else None."""

  kind = "workdir"
  explanations_unavailable = None

  def __init__(self, predictor):
    self.predictor = predictor
    self.classes = labels.beyond_two(getattr(predictor, "classes", None))
    self.seq_len = int(predictor.config.seq_len)
    network = fields.network_name(predictor.config)
    self.description = (f"{predictor.workdir} ({network}, "
                        f"{_reads(predictor.config.truncating, self.seq_len)})")

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    """P(positive) [len(texts)] (K classes: [len(texts), K])."""
    try:
      return self.predictor(texts)
    except (UserError, scoring.NonFiniteScoreError) as e:
      raise ModelError(str(e)) from e

  def word_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
    from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
    return trained.word_counts(texts, self.predictor.word_ids,
                               self.predictor.tokenizer)

  def explain(self, texts: Sequence[str], steps: int) -> list[dict]:
    """explain.Explanation.as_json() of each text (K classes: toward its
    predicted class, explain's default target)."""
    try:
      return [e.as_json() for e in self.predictor.explain(texts, steps)]
    except (UserError, scoring.NonFiniteScoreError) as e:
      raise ModelError(str(e)) from e


class ExportModel:
  """An export's `exported.ExportedModel`: scores only. `classes`: the
  names of K > 2 classes (scores [n, K]), else None."""

  kind = "export"
  explanations_unavailable = EXPORT_CANNOT_EXPLAIN

  def __init__(self, model):
    self.model = model
    self.classes = labels.beyond_two(model.classes)
    self.seq_len = int(model.seq_len)
    network = fields.network_name(model.config)
    self.description = (f"export {model.path} ({network}, "
                        f"{_reads(model.truncating, self.seq_len)})")

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    """P(positive) [len(texts)] (K classes: [len(texts), K])."""
    p = np.asarray(self.model.predict(list(texts)))
    bad = np.flatnonzero(~np.isfinite(p).reshape(len(p), -1).all(axis=1))
    if len(bad):
      raise ModelError(scoring.not_finite_message(
          f"the export in {self.model.path}", f"{len(bad)} of {len(p)} texts",
          "retrain it with a smaller --config.learning_rate and export it "
          "again"))
    return p

  def word_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
    return [self.model.word_counts(t) for t in texts]

  def explain(self, texts: Sequence[str], steps: int) -> list[dict]:
    raise ModelError(EXPORT_CANNOT_EXPLAIN)


# An explanation's scores: the logits (two classes) or a class's
# log-probabilities (K classes).
SCORE_FIELDS = ("logit", "baseline_logit", "log_probability",
                "baseline_log_probability")


def _finite_contributions(why: dict) -> bool:
  values = [why[k] for k in SCORE_FIELDS if k in why] + [
      w["contribution"] for w in why["contributions"]
      if w["contribution"] is not None]
  return all(math.isfinite(v) for v in values)


class Service:
  """What the endpoints answer, for a WorkdirModel or an ExportModel; the
  model is called under `lock`, by one request at a time."""

  def __init__(self, model):
    self.model = model
    self.lock = threading.Lock()

  @property
  def can_explain(self) -> bool:
    return self.model.explanations_unavailable is None

  def info(self) -> dict:
    """What the page shows about the model and the limits."""
    return {"model": self.model.description, "kind": self.model.kind,
            "seq_len": self.model.seq_len, "can_explain": self.can_explain,
            "classes": (None if self.model.classes is None
                        else list(self.model.classes)),
            "explanations_unavailable": self.model.explanations_unavailable,
            "max_texts": MAX_TEXTS, "max_text_chars": MAX_TEXT_CHARS,
            "max_steps": MAX_STEPS, "default_steps": explain.DEFAULT_STEPS}

  def warm_up(self) -> None:
    """Scores one text (compiles the scoring; ModelError if not finite)."""
    self.predict([WARM_UP_TEXT])

  def predict(self, texts: Sequence[str],
              explain: bool = False,  # pylint: disable=redefined-outer-name
              steps: int = explain.DEFAULT_STEPS) -> dict:
    """The POST /predict response for parsed fields (`parse_request`);
    ModelError if a score or contribution is not finite."""
    explaining = explain and self.can_explain
    with self.lock:
      probabilities = self.model.probabilities(texts)
      explanations = (self.model.explain(texts, steps) if explaining
                      else [None] * len(texts))
    results = []
    for text, p, (words, unknown), why in zip(
        texts, probabilities, self.model.word_counts(texts), explanations):
      if not np.isfinite(p).all() or (why and not _finite_contributions(why)):
        raise ModelError(scoring.not_finite_message(
            f"the served model ({self.model.description})",
            f"for {text[:60]!r}",
            "retrain it with a smaller --config.learning_rate"))
      result = exported.prediction_record(
          text, p, words, unknown, min(words, self.model.seq_len),
          self.model.classes)
      if why:
        result.update(why)
      results.append(result)
    response = {"results": results}
    if explain and not self.can_explain:
      response["explanations_unavailable"] = (
          self.model.explanations_unavailable)
    return response


def load_model(workdir: str | None = None, export: str | None = None,
               fall_back: bool = False):
  """The WorkdirModel of a workdir or the ExportModel of an export
  directory, of two classes or more (UserError if it cannot be loaded)."""
  if workdir is not None:
    from flax_sentiment.usage import trained  # pylint: disable=g-import-not-at-top
    return WorkdirModel(trained.load_predictor(workdir, fall_back=fall_back))
  try:
    return ExportModel(exported.load(export))
  except exported.ExportError as e:
    raise UserError(str(e)) from None
