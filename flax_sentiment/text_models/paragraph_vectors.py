"""Paragraph vectors beside the recurrent and n-gram models: a logistic
regression on each review's PV-DBOW vector (Le & Mikolov 2014, gensim's
`Doc2Vec(dm=0)`).

  flax-sentiment train --config paragraph_vectors --workdir runs/pv

Doc2Vec learns a vector per review that predicts the review's words
(negative sampling), on the train part and, with
`vocabulary_splits="train+unsupervised"`, the unlabeled reviews too — never
validation or test reviews. Every review the classifier sees (train,
validation, test and new texts) then gets its vector the same way
(`infer_vector`: the words frozen, the start seeded by the text), so a text
gets the same vector in any process, batch and order.
scikit-learn's `LogisticRegression` is fitted on the train part's vectors
for each of `pv_c_values`; the best on validation (its `select_on`) is
kept. Data of K > 2 classes: a multinomial regression (softmax over the
classes, the lbfgs solver), its logits one per class. Doc2Vec runs on
one worker with `seed` (and a stable hash for its word vectors), so a run is
reproducible.

A run writes a normal workdir (`common.py`) and `paragraph_vectors/`:
gensim's model (pickled, as gensim saves it) and `classifier.npz` (the
regression's weights [pv_dim], bias; K classes: [pv_dim, K], [K] and the
class names in its header).
"""

import dataclasses
import json
import pathlib
from typing import Callable, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import labels as labels_lib, tokenizer, word_vectors
from flax_sentiment.text_models import common
from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.tracking.rundir import RunDir

NAME = "paragraph-vector"
FORMAT_VERSION = 1
DOC2VEC_FILE, CLASSIFIER_FILE = "doc2vec.model", "classifier.npz"


def text_seed(words: Sequence[str]) -> int:
  """A stable seed from a text's words (the same in every process)."""
  return word_vectors.stable_hash(" ".join(words))


def train_doc2vec(texts: Sequence[str | bytes], config):
  """Doc2Vec PV-DBOW over `texts` (one tag per text), one worker, seeded:
  the same texts and config give the same model."""
  from gensim.models.doc2vec import Doc2Vec, TaggedDocument  # pylint: disable=g-import-not-at-top
  split = tokenizer.Tokenizer(tokenizer.kind_of(config))
  documents = [TaggedDocument(split(t), [i]) for i, t in enumerate(texts)]
  model = Doc2Vec(vector_size=config.pv_dim, dm=0, window=config.pv_window,
                  min_count=config.pv_min_count, sample=config.pv_sample,
                  negative=5,
                  epochs=config.pv_epochs, workers=1, seed=config.seed,
                  hashfxn=word_vectors.stable_hash)
  model.build_vocab(documents)
  model.train(documents, total_examples=len(documents), epochs=model.epochs)
  return model


def infer_vector(doc2vec, words: list[str]) -> np.ndarray:
  """The PV-DBOW vector [pv_dim] float32 of one text, its words and the
  output layer frozen: gensim's `Doc2Vec.infer_vector` (the same passes and
  learning rates), but started from a vector and negative samples seeded by
  `text_seed` — gensim seeds its start with Python's `hash`, which differs
  between processes, so its vectors (and accuracies) changed from run to
  run."""
  from gensim.models.doc2vec_inner import train_document_dbow  # pylint: disable=g-import-not-at-top
  size, seed = doc2vec.vector_size, text_seed(words)
  start = np.random.Generator(np.random.SFC64(seed)).random(size)
  vector = ((start.astype(np.float32) - 0.5) / size).reshape(1, size)
  doc2vec.random = np.random.RandomState(seed)  # its negative samples
  lock, work = np.ones(1, np.float32), np.zeros(doc2vec.layer1_size,
                                                 np.float32)
  alpha, epochs = doc2vec.alpha, doc2vec.epochs
  step = (alpha - doc2vec.min_alpha) / max(epochs - 1, 1)
  for _ in range(epochs):
    train_document_dbow(doc2vec, words, [0], alpha, work, learn_words=False,
                        learn_hidden=False, doctag_vectors=vector,
                        doctags_lockf=lock)
    alpha -= step
  return vector[0]


@dataclasses.dataclass
class ParagraphVectorModel:
  """Scores texts: logit = bias + weights · (the text's inferred vector);
  K > 2 classes: one logit per class, their softmax the probabilities."""
  doc2vec: object              # gensim.models.doc2vec.Doc2Vec
  weights: np.ndarray          # [pv_dim] float64 (K classes: [pv_dim, K])
  bias: float | np.ndarray     # (K classes: [K])
  tokenizer: str = "english"   # the kind of tokenizer its words are of
  classes: tuple[str, ...] | None = None  # K > 2: their names, in order

  explain_hint = ("paragraph vectors: its features are learned vectors, "
                  "not words")

  def known_words(self) -> frozenset[str]:
    return frozenset(self.doc2vec.wv.key_to_index)

  def vectors(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> [len(texts), pv_dim] float32, each inferred on its own
    (`infer_vector`)."""
    out = np.zeros((len(texts), self.doc2vec.vector_size), np.float32)
    split = tokenizer.Tokenizer(self.tokenizer)
    for row, text in enumerate(texts):
      out[row] = infer_vector(self.doc2vec, split(text))
    return out

  def logits(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> logits [len(texts)] float32 (K classes: [len(texts), K])."""
    vectors = self.vectors(texts).astype(np.float64)
    return (vectors @ self.weights + self.bias).astype(np.float32)

  def __call__(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> P(positive) [len(texts)] float32 (K classes: the class
    probabilities [len(texts), K], the softmax of the logits)."""
    return common.probabilities(self.logits(texts))

  def save(self, directory: pathlib.Path) -> None:
    """`directory`/doc2vec.model (gensim's files) and classifier.npz,
    written beside it first and moved in place: a crash leaves the old
    model or none, never half of one."""
    header = {"format": FORMAT_VERSION, "tokenizer": self.tokenizer}
    if self.classes is not None:
      header["classes"] = list(self.classes)
    with files.atomic_directory(directory) as partial:
      self.doc2vec.save(str(partial / DOC2VEC_FILE))
      np.savez(partial / CLASSIFIER_FILE, weights=self.weights,
               bias=np.asarray(self.bias, np.float64),
               header=np.frombuffer(json.dumps(header).encode(), np.uint8))

  @classmethod
  def load(cls, directory: pathlib.Path) -> "ParagraphVectorModel":
    """The model saved in `directory`; UserError naming it if it is missing
    or damaged."""
    from gensim.models.doc2vec import Doc2Vec  # pylint: disable=g-import-not-at-top
    directory = pathlib.Path(directory)
    try:
      with np.load(directory / CLASSIFIER_FILE, allow_pickle=False) as saved:
        weights = np.asarray(saved["weights"], np.float64)
        bias = np.asarray(saved["bias"], np.float64)
        header = json.loads(saved["header"].tobytes())
      kind = str(header.get("tokenizer", "english"))
      classes = header.get("classes")
      classes = None if classes is None else tuple(str(c) for c in classes)
      doc2vec = Doc2Vec.load(str(directory / DOC2VEC_FILE))
      shape = ((doc2vec.vector_size,) if classes is None
               else (doc2vec.vector_size, len(classes)))
      if (weights.shape != shape or bias.shape != shape[1:]
          or not np.all(np.isfinite(weights))
          or not np.all(np.isfinite(bias))):
        raise ValueError("classifier and vectors disagree, or weights are "
                         "not finite")
      return cls(doc2vec, weights, float(bias) if classes is None else bias,
                 kind, classes)
    except FileNotFoundError:
      raise UserError(f"{directory} is missing or incomplete; re-run the "
                      f"training command to rebuild it") from None
    except Exception as e:  # pylint: disable=broad-except
      # gensim's files are pickles: a damaged one can raise almost anything.
      raise UserError(f"{directory} is damaged ({type(e).__name__}); re-run "
                      f"the training command to rebuild it") from None


def fit_run(splits, config, say: Callable[[str], None],
            classes: tuple[str, ...] | None = None
            ) -> tuple[ParagraphVectorModel, dict]:
  """`text_models` fits a run here: Doc2Vec on the train part (+ unlabeled
  reviews if read), the regression per C on the train part's inferred
  vectors, the C best on validation kept (ties to the smaller). `classes`
  (K > 2 names; labels their ids): a multinomial regression."""
  (linear_model,) = common.sklearn_modules(config, "linear_model")
  train_texts, train_labels = splits["train"]
  unlabeled = splits.get("unsupervised", ([], None))[0]
  say(f"Training paragraph vectors on {len(train_texts) + len(unlabeled):,} "
      f"reviews ({config.pv_epochs} epochs, one worker) ...")
  doc2vec = train_doc2vec(list(train_texts) + list(unlabeled), config)
  kind = tokenizer.kind_of(config)
  unfitted = ParagraphVectorModel(doc2vec, np.zeros(config.pv_dim), 0.0, kind)
  say("Inferring the vectors of the train part ...")
  train_x = unfitted.vectors(train_texts)
  # Standardized on the train part (so C means the same at any vector
  # scale); the scaling is folded into the saved weights.
  mean, std = train_x.mean(axis=0), np.maximum(train_x.std(axis=0), 1e-12)
  standardize = lambda x: (x - mean) / std
  train_x = standardize(train_x)
  validation = splits.get("validation")
  validation_x = (standardize(unfitted.vectors(validation[0]))
                  if validation is not None else None)
  many = labels_lib.beyond_two(classes) is not None

  def fit_one(c: float):
    fitted = linear_model.LogisticRegression(C=c, max_iter=2000).fit(
        train_x, np.asarray(train_labels))
    return class_columns(fitted, len(classes), len(train_x)) if many else fitted
  best, regression, accuracy = common.fit_per_c(
      fields.parse_number_list(config.pv_c_values), fit_one,
      None if validation is None else common.Validation(
          validation_x, validation[1], config.select_on), say)
  if many:
    weights = regression.weights / std[:, None]
    model = ParagraphVectorModel(doc2vec, weights,
                                 regression.bias - mean @ weights, kind,
                                 tuple(classes))
  else:
    weights = regression.coef_.ravel().astype(np.float64) / std
    model = ParagraphVectorModel(
        doc2vec, weights, float(regression.intercept_[0] - weights @ mean),
        kind)
  return model, {"pv_words": len(doc2vec.wv), "pv_c": best,
                 common.by_c_field("pv", config): accuracy}


def class_columns(regression, num_classes: int,
                  reviews: int) -> common.Linear:
  """A fitted scikit-learn regression as weights [features, K] and bias
  [K], one column per class id: its multinomial logits, (two classes seen)
  the binary logit as the later class's against 0, and for a class with no
  train review zero weights and the bias that gives it the add-one
  estimate 1 / (reviews + 2) at the mean (standardized: zero) vector."""
  seen = np.asarray(regression.classes_, np.int64)
  coef = np.asarray(regression.coef_, np.float64)
  intercept = np.asarray(regression.intercept_, np.float64)
  if len(seen) == 2:  # scikit-learn's binary form: one logit
    coef = np.stack([np.zeros_like(coef[0]), coef[0]])
    intercept = np.array([0.0, intercept[0]])
  weights = np.zeros((coef.shape[1], num_classes))
  bias = np.zeros(num_classes)
  weights[:, seen], bias[seen] = coef.T, intercept
  absent = np.setdiff1d(np.arange(num_classes), seen)
  bias[absent] = (np.logaddexp.reduce(intercept)
                  - np.log(reviews + 1.0))
  return common.Linear(weights, bias)


def model_path(rundir: RunDir) -> pathlib.Path:
  return rundir.path / "paragraph_vectors"


def load(rundir: RunDir) -> ParagraphVectorModel:
  return ParagraphVectorModel.load(model_path(rundir))
