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
for each of `pv_c_values`; the best on validation is kept. Doc2Vec runs on
one worker with `seed` (and a stable hash for its word vectors), so a run is
reproducible.

A run writes a normal workdir (`common.py`) and `paragraph_vectors/`:
gensim's model (pickled, as gensim saves it) and `classifier.npz` (the
regression's weights [pv_dim], bias).
"""

import dataclasses
import json
import pathlib
from typing import Callable, Sequence

import numpy as np

from flax_sentiment.configuration import fields
from flax_sentiment.data import tokenizer, word_vectors
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
  """Scores texts: logit = bias + weights · (the text's inferred vector)."""
  doc2vec: object              # gensim.models.doc2vec.Doc2Vec
  weights: np.ndarray          # [pv_dim] float64
  bias: float
  tokenizer: str = "english"   # the kind of tokenizer its words are of

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
    """texts -> logits [len(texts)] float32."""
    vectors = self.vectors(texts).astype(np.float64)
    return (vectors @ self.weights + self.bias).astype(np.float32)

  def __call__(self, texts: Sequence[str | bytes]) -> np.ndarray:
    """texts -> P(positive) [len(texts)] float32."""
    return (1 / (1 + np.exp(-self.logits(texts).astype(np.float64)))
            ).astype(np.float32)

  def save(self, directory: pathlib.Path) -> None:
    """`directory`/doc2vec.model (gensim's files) and classifier.npz,
    written beside it first and moved in place: a crash leaves the old
    model or none, never half of one."""
    with files.atomic_directory(directory) as partial:
      self.doc2vec.save(str(partial / DOC2VEC_FILE))
      np.savez(partial / CLASSIFIER_FILE, weights=self.weights,
               bias=np.float64(self.bias), header=np.frombuffer(json.dumps(
                   {"format": FORMAT_VERSION, "tokenizer": self.tokenizer}
               ).encode(), np.uint8))

  @classmethod
  def load(cls, directory: pathlib.Path) -> "ParagraphVectorModel":
    """The model saved in `directory`; UserError naming it if it is missing
    or damaged."""
    from gensim.models.doc2vec import Doc2Vec  # pylint: disable=g-import-not-at-top
    directory = pathlib.Path(directory)
    try:
      with np.load(directory / CLASSIFIER_FILE, allow_pickle=False) as saved:
        weights = np.asarray(saved["weights"], np.float64)
        bias = float(saved["bias"])
        kind = str(json.loads(saved["header"].tobytes()).get("tokenizer",
                                                              "english"))
      doc2vec = Doc2Vec.load(str(directory / DOC2VEC_FILE))
      if (weights.shape != (doc2vec.vector_size,)
          or not np.all(np.isfinite(weights)) or not np.isfinite(bias)):
        raise ValueError("classifier and vectors disagree, or weights are "
                         "not finite")
      return cls(doc2vec, weights, bias, kind)
    except FileNotFoundError:
      raise UserError(f"{directory} is missing or incomplete; re-run the "
                      f"training command to rebuild it") from None
    except Exception as e:  # pylint: disable=broad-except
      # gensim's files are pickles: a damaged one can raise almost anything.
      raise UserError(f"{directory} is damaged ({type(e).__name__}); re-run "
                      f"the training command to rebuild it") from None


def fit_run(splits, config, say: Callable[[str], None]
            ) -> tuple[ParagraphVectorModel, dict]:
  """`text_models` fits a run here: Doc2Vec on the train part (+ unlabeled
  reviews if read), the regression per C on the train part's inferred
  vectors, the C best on validation kept (ties to the smaller)."""
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
  best, regression, accuracy = common.fit_per_c(
      fields.parse_number_list(config.pv_c_values),
      lambda c: linear_model.LogisticRegression(C=c, max_iter=2000).fit(
          train_x, np.asarray(train_labels)),
      None if validation is None else (validation_x, validation[1]), say)
  weights = regression.coef_.ravel().astype(np.float64) / std
  model = ParagraphVectorModel(
      doc2vec, weights, float(regression.intercept_[0] - weights @ mean), kind)
  return model, {"pv_words": len(doc2vec.wv), "pv_c": best,
                 "pv_validation_accuracy_by_c": accuracy}


def model_path(rundir: RunDir) -> pathlib.Path:
  return rundir.path / "paragraph_vectors"


def load(rundir: RunDir) -> ParagraphVectorModel:
  return ParagraphVectorModel.load(model_path(rundir))
