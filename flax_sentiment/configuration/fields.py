"""Every config field, declared once: its default, meaning, check and
resume rule.

`FIELDS` is the one place a field is declared. From it derive:
`configs/default.py` (`default_config()`), `--help` (`describe_fields`),
the per-field checks (`check_fields`, called by
`config_checks.validate_config`, which adds the checks that relate several
fields) and what may change when a run resumes (`may_change_on_resume`).
A new field is one `Field(...)` line here; code reads it as `config.<name>`
(no `config.get` fallbacks: a saved config of an older run is completed
with these defaults by `complete`).

The defaults are the Keras notebook's LSTM experiment at seq_len 64.
"""

import dataclasses
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

from flax_sentiment.configuration.values import (  # pylint: disable=unused-import
    Check, positive_int, non_negative_int, optional_positive_int, optional_int,
    positive_number, non_negative_number, rate, boolean, text,
    optional_text, parse_number_list, number_list, one_of)
from flax_sentiment.runtime.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field. `on_resume`: why the field may differ between a
  workdir's checkpoints and the config that continues them (None: it must
  match — it fixes the parameters, the optimizer, the data or its order).
  `kind`: the Python type of an optional (None-default) field. `predates`:
  the value for a saved config without the field, when the default would
  not do what the older version did (None: the default)."""
  default: Any
  help: str
  check: Check
  on_resume: str | None = None
  kind: type | None = None
  # The value a saved config that predates the field gets (what versions
  # before it did), if not the default.
  predates: Any = None


F = Field
# The kinds of model and cell, declared once: the fields' checks, the text
# models' dispatch (text_models.common) and the cell registries
# (model.classifier, model.cells) are built from these.
RECURRENT = "recurrent"
REGION_CNN = "region_cnn"
# Text models (text_models/<name>.py) and the field of the C values each
# chooses among on validation.
TEXT_MODEL_C_FIELDS = {"ngrams": "ngram_c_values",
                       "paragraph_vectors": "pv_c_values"}
MODELS = (RECURRENT, REGION_CNN, *TEXT_MODEL_C_FIELDS)
CELL_NAMES = ("rnn", "lstm", "gru")


def network_name(config) -> str:
  """What a run's config (a ConfigDict, or an export's dict) trains, in a
  word or two: "region CNN", or its cell ("LSTM")."""
  if config.get("model") == REGION_CNN:
    return "region CNN"
  return str(config.get("cell", "model")).upper()

FIELDS: dict[str, Field] = {
    # ----- Model.
    "model": F("recurrent", "recurrent (embedding -> RNN/LSTM/GRU -> dense) "
               "| region_cnn (Johnson & Zhang's CNN over bags of region_size "
               "words, embed_dim units, max-pooled; optionally with region "
               "embeddings) | ngrams (naive-Bayes-weighted logistic regression on "
               "binary word n-grams; needs scikit-learn) | paragraph_vectors "
               "(logistic regression on PV-DBOW review vectors, gensim; "
               "needs scikit-learn)",
               one_of(*MODELS)),
    "region_size": F(5, "model=region_cnn, or region_embedding_dim: words "
                     "in a region, centred on each word (the convolution's "
                     "width)", positive_int),
    "region_embedding_dim": F(
        0, ">0: the width of region (tv-) embeddings of region_size words, "
        "learned first to predict each region's neighbouring words from "
        "train + unlabeled reviews (never test or validation text; cached, "
        "shared by seeds): a fixed side input of the region CNN, or of the "
        "recurrent model's first layer; 0: none", non_negative_int),
    "region_embedding_ngrams": F(
        1, "with region_embedding_dim: 1 reads each region as a bag of "
        "words; n > 1 adds its 2- to n-grams, hashed (Johnson & Zhang's "
        "1-3-gram variant: 3)", positive_int),
    "region_embedding_epochs": F(
        2, "with region_embedding_dim: passes over the unlabeled text's "
        "regions", positive_int),
    "ngram_max_n": F(3, "model=ngrams: the longest n-gram (1: words only)",
                     positive_int),
    "ngram_min_count": F(2, "model=ngrams: keep n-grams found in at least "
                         "this many train reviews", positive_int),
    "ngram_c_values": F("0.03,0.1,0.3,1", "model=ngrams: inverse "
                        "regularization strengths tried (comma-separated); "
                        "the best on validation is kept", number_list),
    "pv_dim": F(100, "model=paragraph_vectors: the width of a review's "
                "vector", positive_int),
    "pv_epochs": F(10, "model=paragraph_vectors: Doc2Vec's passes over the "
                   "reviews (also the inference passes of each review)",
                   positive_int),
    "pv_window": F(10, "model=paragraph_vectors: Doc2Vec's context window",
                   positive_int),
    "pv_sample": F(1e-4, "model=paragraph_vectors: Doc2Vec's downsampling "
                   "of frequent words (0: none; small corpora need 0)",
                   non_negative_number),
    "pv_min_count": F(2, "model=paragraph_vectors: keep words found at least "
                      "this many times", positive_int),
    "pv_c_values": F("0.1,1", "model=paragraph_vectors: inverse "
                     "regularization strengths tried (comma-separated); the "
                     "best on validation is kept", number_list),
    "cell": F("lstm", "rnn (SimpleRNN, tanh) | lstm | gru",
              one_of(*CELL_NAMES)),
    "num_words": F(10_000, "vocabulary size incl. the 2 reserved ids (0 pad, "
                   "1 unknown)", positive_int),
    "embed_dim": F(256, "embedding width (model=region_cnn: the region "
                   "layer's units)", positive_int),
    "hidden_dim": F(128, "recurrent state width (per direction)",
                    positive_int),
    "dtype": F("float32", "compute dtype: float32 | bfloat16 (parameters "
               "stay float32)", one_of("float32", "bfloat16")),
    "bidirectional": F(False, "add a backward recurrence per layer (needs "
                       "mask_padding=True)", boolean),
    "num_layers": F(1, "stacked recurrent layers", positive_int),
    "pooling": F("last", "features for the dense layer: last | max | mean, "
                 "or joined with + (max/mean skip padding; need "
                 "mask_padding=True)", text),
    "embed_dropout": F(0.0, "training: drop whole words (embedding rows) "
                       "with this probability", rate),
    "dropout": F(0.0, "training: dropout between layers and before the "
                 "dense layer", rate),
    "pretrained_embeddings": F(
        "none", "none | word2vec: initialize the embedding with word2vec "
        "(gensim) trained on train + unlabeled reviews (never test or "
        "validation text)", one_of("none", "word2vec")),
    "pretrain_lm_epochs": F(
        0, ">0: first pretrain the embedding and recurrences as a language "
        "model (forward: next word, backward: previous word) for this many "
        "epochs over train + unlabeled reviews (never test or validation "
        "text; cached, shared by seeds)", non_negative_int),
    "lm_sampled_words": F(1024, "language-model pretraining: sampled-softmax "
                          "candidates a step", positive_int),
    "lm_batch_size": F(64, "language-model pretraining: pieces a batch",
                       positive_int),
    "lm_learning_rate": F(2e-3, "language-model pretraining: Adam peak "
                          "learning rate (warmup, cosine decay)",
                          positive_number),
    # ----- Data.
    "dataset": F("imdb_reviews", "imdb_reviews (tfds) or a path: "
                 "reviews.csv/.tsv, reviews.jsonl, or a folder with pos/ and "
                 "neg/ text files", text),
    "test_dataset": F(None, "test reviews, given like dataset (None: IMDB's "
                      "test split, or test_fraction of a dataset file)",
                      optional_text, kind=str),
    "test_fraction": F(0.2, "with a dataset path and no test_dataset: share "
                       "of its reviews held out (seeded by validation_seed) "
                       "as the test set", rate),
    "unlabeled_dataset": F(None, "unlabeled reviews (a .txt with one per "
                           "line, or like dataset) for word2vec and "
                           "vocabulary_splits=train+unsupervised (None: "
                           "IMDB's unsupervised split)", optional_text,
                           kind=str),
    "text_field": F("text", "column (CSV/TSV) or key (JSONL) of the text",
                    text),
    "label_field": F("label", "column or key of the label (0/1, neg/pos, "
                     "negative/positive, false/true; or more classes: see "
                     "labels)", text),
    "select_on": F("accuracy", "the validation metric that picks the "
                   "reported epoch and stops early: accuracy | macro_f1 (runs "
                   "of more than two classes: the choice for imbalanced "
                   "classes)", one_of("accuracy", "macro_f1")),
    "class_weights": F("", "the loss weight of each class: empty (none) | "
                       "balanced (n / (K n_k): each class weighs as much) | "
                       "comma-separated weights in class order (e.g. 1,3)",
                       lambda v: None if isinstance(v, str) else "a string"),
    "labels": F("", "the classes in order, comma-separated, as the file "
                "writes them (e.g. neg,neutral,pos); empty: 0/1, neg/pos, "
                "negative/positive, false/true as the two classes, other "
                "labels as classes in numeric or alphabetical order",
                lambda v: None if isinstance(v, str) else "a string"),
    "seq_len": F(64, "tokens per review after padding/truncation",
                 positive_int),
    "padding": F("pre", "Keras pad_sequences side for padding: pre | post",
                 one_of("pre", "post")),
    "truncating": F("pre", "side cut from long reviews: pre | post",
                    one_of("pre", "post")),
    "mask_padding": F(False, "True: padding leaves the recurrent state "
                      "untouched", boolean),
    "length_buckets": F(0, ">0: length-aware batching with this many "
                        "buckets (needs padding=post, mask_padding=True)",
                        non_negative_int),
    "tokenizer": F(
        "auto", "text -> tokens: auto (english for IMDB, words for your own "
        "files) | english (the notebook's [a-z0-9'] words) | words (Unicode "
        "words of any script, NFKC-normalized, case-folded) | characters "
        "(Korean syllables, Chinese, Japanese) | subwords (SentencePiece "
        "pieces, num_words - 2 of them, trained on the train text and the "
        "unlabeled text, never validation or test text)",
        one_of("auto", "english", "words", "characters", "subwords"),
        predates="english"),
    "vocabulary_splits": F("train", "text the vocabulary comes from: train | "
                           "train+unsupervised (never test)",
                           one_of("train", "train+unsupervised")),
    "max_train_examples": F(None, "seeded, label-balanced train subset "
                            "(None: all)", optional_positive_int, kind=int),
    "max_test_examples": F(None, "seeded, label-balanced test subset (None: "
                           "all)", optional_positive_int, kind=int),
    "data_dir": F(None, "folder holding imdb_reviews/ (None: TFDS_DATA_DIR "
                  "or ~/tensorflow_datasets)", optional_text,
                  on_resume="where IMDB is read from (its vocabulary is "
                  "checked)", kind=str),
    "download": F(True, "let tfds download IMDB if it is not found", boolean,
                  on_resume="whether tfds may download"),
    "cache_dir": F(None, "token and compilation cache (None: "
                   "$FLAX_SENTIMENT_CACHE or ~/.cache/flax_sentiment)",
                   optional_text, on_resume="token and compilation caches",
                   kind=str),
    # ----- Training.
    "batch_size": F(32, "global train batch (must divide over the devices)",
                    positive_int),
    "num_epochs": F(5, "epochs to train", positive_int,
                    on_resume="train on, or stop sooner (constant learning "
                    "rate only: a schedule's length depends on it)"),
    "learning_rate": F(1e-3, "Adam learning rate (peak, with a schedule)",
                       positive_number),
    "lr_schedule": F("constant", "constant | cosine | linear: warmup, then "
                     "decay to 0 at the last epoch",
                     one_of("constant", "cosine", "linear")),
    "warmup_steps": F(0, "linear warmup steps (with a schedule)",
                      non_negative_int),
    "weight_decay": F(0.0, ">0: AdamW decoupled weight decay",
                      non_negative_number),
    "clip_grad_norm": F(0.0, ">0: clip gradients to this global norm",
                        non_negative_number),
    "adversarial_epsilon": F(
        0.0, ">0: adversarial training (Miyato et al. 2017): also fit the "
        "batch with its embedded tokens moved this far (L2 per review) along "
        "the loss gradient", non_negative_number),
    "virtual_adversarial_epsilon": F(
        0.0, ">0: virtual adversarial training on unlabeled reviews (Miyato "
        "et al. 2017; IMDB's unsupervised split or unlabeled_dataset): also "
        "fit each train batch's unlabeled batch to keep its predictions "
        "when its embedded tokens move this far (L2 per review, the scale of "
        "adversarial_epsilon) in the direction that changes them most",
        non_negative_number),
    "virtual_adversarial_xi": F(
        0.05, "virtual adversarial training: the finite-difference step "
        "(L2 per review) of the power iteration that finds that direction "
        "(Miyato: xi/epsilon = 0.1/5 on normalized embeddings; 0.05 is that "
        "share of epsilon 2.5)", positive_number),
    "seed": F(0, "initialization, data order, subsets, validation split",
              non_negative_int),
    "steps_per_call": F(32, "train steps per compiled call (lax.scan)",
                        positive_int),
    "eval_batch_size": F(500, "evaluation batch, rounded up to a multiple of "
                         "the device count", positive_int,
                         on_resume="evaluation metrics are sums over every "
                         "review"),
    "validation_examples": F(0, ">0: hold out this many train reviews for "
                             "validation (model selection, early stopping)",
                             non_negative_int),
    "validation_seed": F(0, "seed of the validation split (kept fixed when "
                         "`seed` varies, so seeds share it)",
                         non_negative_int),
    "early_stopping_patience": F(0, ">0: stop when validation accuracy has "
                                 "not improved for this many epochs",
                                 non_negative_int,
                                 on_resume="applied to the epochs recorded "
                                 "so far"),
    # ----- Speed (results do not depend on them beyond float rounding).
    "implementation": F("auto", "recurrence: auto (pallas on one Hopper GPU, "
                        "else hoisted) | hoisted (fast XLA loop) | stock "
                        "(nn.RNN) | pallas (Mosaic GPU kernels, Hopper GPUs)",
                        one_of("auto", "hoisted", "stock", "pallas")),
    "unroll": F(0, "time steps per loop iteration (unmasked hoisted loops); "
                "0: by backend (8 on GPU, 1 elsewhere)", non_negative_int),
    "project_distinct_words": F(True, "project only the words each batch "
                                "uses (same math, faster)", boolean),
    # ----- What a run shows.
    "progress": F(True, "progress bar on a terminal (False: plain lines "
                  "only)", boolean, on_resume="display only"),
    "progress_every_seconds": F(30.0, "seconds between plain progress lines",
                                non_negative_number,
                                on_resume="display only"),
    # ----- Checkpoints.
    "checkpoint_every_steps": F(200, "train steps between mid-epoch "
                                "checkpoints", positive_int,
                                on_resume="when checkpoints are written"),
    "keep_checkpoints": F(2, "checkpoints kept in <workdir>/checkpoints",
                          positive_int, on_resume="how many are kept"),
    # ----- Many processes (None: single process or auto-detected TPU).
    "coordinator_address": F(None, "HOST:PORT of process 0 (multi-process "
                             "runs)", optional_text,
                             on_resume="where the processes meet", kind=str),
    "num_processes": F(None, "processes in a multi-process run",
                       optional_positive_int,
                       on_resume="how many processes share the devices",
                       kind=int),
    "process_id": F(None, "this process's index in a multi-process run",
                    optional_int, on_resume="differs per process by "
                    "definition", kind=int),
}
del F


def default_config() -> ml_collections.ConfigDict:
  """Every field at its default (None-default fields as typed
  placeholders, so `--config.max_train_examples=2000` parses)."""
  config = ml_collections.ConfigDict()
  for name, field in FIELDS.items():
    config[name] = (placeholder(field.kind) if field.default is None
                    else field.default)
  return config


def complete(saved: dict) -> ml_collections.ConfigDict:
  """A saved config (config.json) with the fields it predates at their
  defaults (which reproduce what older versions did)."""
  config = default_config()
  config.update({name: field.predates for name, field in FIELDS.items()
                 if name not in saved and field.predates is not None})
  config.update({k: v for k, v in saved.items() if k in FIELDS})
  return config


def check_fields(config) -> None:
  """Raises ConfigError for an unknown field, a missing one, or the first
  value its own check refuses."""
  unknown = sorted(set(config.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f"unknown config field {unknown[0]!r}; see "
                      f"flax-sentiment train --help for the fields")
  missing = [name for name in FIELDS if name not in config]
  if missing:
    raise ConfigError(f"the config has no field {missing[0]!r}; start it "
                      f"from flax_sentiment.configs.default.get_config()")
  for name, field in FIELDS.items():
    must_be = field.check(config[name])
    if must_be and hasattr(field.check, "choices"):
      raise ConfigError(f"config.{name}={config[name]!r} is not allowed; "
                        f"use {must_be}")
    if must_be:
      raise ConfigError(f"config.{name}={config[name]!r} must be {must_be}")


def may_change_on_resume(name: str, config) -> bool:
  """Whether field `name` may differ when `config` continues a run."""
  field = FIELDS.get(name)
  if field is None or field.on_resume is None:
    return False
  return not (name == "num_epochs" and config["lr_schedule"] != "constant")


def resume_rules() -> dict[str, str]:
  """{field: why it may change on resume} (for messages and docs)."""
  return {name: f.on_resume for name, f in FIELDS.items() if f.on_resume}


def describe_fields(config) -> str:
  """Every field of `config` with its value and meaning (for --help)."""
  width = max(len(f) for f in config.keys())
  lines = []
  for name in config.keys():
    meaning = FIELDS[name].help if name in FIELDS else ""
    lines.append(f"  --config.{name:<{width}} = {config[name]!r:<12} "
                 f"{meaning}")
  return "\n".join(lines)
