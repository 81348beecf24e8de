"""A self-contained export of a trained run: the model as a serialized
`jax.export` function plus its vocabulary, runnable with numpy and jax only.

  python -m flax_sentiment.usage.export --workdir runs/lstm64 --out exports/lstm64
  python -m flax_sentiment.usage.export --workdir W --out DIR --platform cpu \
      --platform cuda
  python exports/lstm64/exported.py exports/lstm64 "A wonderful film."

The function is token ids [b, seq_len] int32 -> P(positive) [b] float32 with
a symbolic batch b (a run of K > 2 classes: each class's probability
[b, K], the manifest's "classes" naming them in order), the run's
parameters baked in as constants, computed by the XLA loop
(`implementation="hoisted"`: the Pallas kernels are GPU-only).
The directory's files and their checks: `flax_sentiment.usage.exported` (the
loader, copied into every export).
"""

import argparse
import datetime
import functools
import json
import pathlib
import shutil
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

import flax_sentiment
from flax_sentiment.data import labels, tokenizer
from flax_sentiment.model import classifier, scoring
from flax_sentiment.usage import exported, trained
from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import UserError
from flax_sentiment.tracking.rundir import RunDir

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # jax.export's platform names


def _say(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def scoring_function(model: classifier.SentimentClassifier, params: Any
                     ) -> Callable[[jax.Array], jax.Array]:
  """tokens [batch, seq_len] int32 -> P(positive) [batch] float32 (a model
  of K classes: their probabilities [batch, K]), `params` closed over as
  constants. (With a symbolic batch the first layer projects
  each token's embedding row: `embedding.project_tokens`.)"""
  return lambda tokens: scoring.probabilities(model, params, tokens)


def export_function(model: classifier.SentimentClassifier, params: Any,
                    seq_len: int, platforms: Sequence[str]
                    ) -> jax.export.Exported:
  """The scoring function exported for `platforms`, for token ids
  [b, seq_len] int32 with a symbolic batch b."""
  batch, = jax.export.symbolic_shape("b")
  tokens = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32)
  return jax.export.export(jax.jit(scoring_function(model, params)),
                           platforms=list(platforms))(tokens)


def is_export(path: pathlib.Path) -> bool:
  """Whether `path` is a directory an earlier export wrote."""
  try:
    manifest = json.loads((path / exported.MANIFEST).read_text())
  except (OSError, ValueError):
    return False
  return isinstance(manifest, dict) and manifest.get(
      "format") == exported.FORMAT


def check_out_dir(out_dir: pathlib.Path) -> None:
  """UserError unless `out_dir` is absent, empty or an earlier export."""
  if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
    raise UserError(f"--out {out_dir} is not a directory; pass a new or "
                    f"empty directory")
  if out_dir.is_dir() and any(out_dir.iterdir()) and not is_export(out_dir):
    raise UserError(f"--out {out_dir} is not empty and holds no export "
                    f"(no {exported.MANIFEST}); pass a new or empty "
                    f"directory, or an earlier export to replace")


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
  """`platforms` without repeats (UserError for an unknown one)."""
  unknown = [p for p in platforms if p not in PLATFORMS]
  if unknown or not platforms:
    raise UserError(f"--platform {', '.join(unknown) or '(none)'}: pass one "
                    f"or more of {', '.join(PLATFORMS)}")
  return tuple(dict.fromkeys(platforms))


def function_record(classes: labels.Classes) -> dict:
  """The manifest's "function": what the exported function takes and
  gives (`classes`: a run of K > 2 classes, else None)."""
  output = ("P(positive) [b] float32" if classes is None else
            f"class probabilities [b, {len(classes)}] float32, in the order "
            f"of \"classes\"")
  return {"input": "token ids [b, seq_len] int32", "output": output,
          "implementation": "hoisted (XLA loop)"}


def manifest(config: dict, platforms: Sequence[str], files: dict[str, str],
             checkpoint: dict, kind: str = "english",
             classes: labels.Classes = None) -> dict:
  """export.json: what the loader checks and needs, and where it came from;
  `files` maps each other file to its sha256; "digest" covers the rest. A
  run of K > 2 `classes` adds "classes" (their names in class order); a
  binary run's manifest has no such key."""
  out = {
      "format": exported.FORMAT,
      "format_version": (exported.FORMAT_VERSION if labels.count(classes) == 2
                         else exported.CLASSES_FORMAT_VERSION),
      "tokenizer_version": (tokenizer.TOKENIZER_VERSION if kind == "english"
                            else exported.TOKENIZER_KINDS_VERSION),
      "tokenization": {
          "seq_len": config["seq_len"], "padding": config["padding"],
          "truncating": config["truncating"], "line_break": "<br />",
          "pad_id": tokenizer.PAD_ID, "oov_id": tokenizer.OOV_ID,
          "first_word_id": tokenizer.NUM_RESERVED_IDS,
          **({"lower_case": True, "word_pattern": exported.WORD_PATTERN}
             if kind == "english" else
             {"tokenizer": kind, "normalization": "NFKC, case-folded"})},
      # What the loader needs besides the standard library.
      "requires": ["jax", "numpy", "flatbuffers"] + (
          ["sentencepiece"] if kind == "subwords" else []),
      "function": function_record(classes),
      "platforms": list(platforms),
      "config": config,
      "checkpoint": checkpoint,
      "files": files,
      "flax_sentiment_version": flax_sentiment.__version__,
      "jax_version": jax.__version__,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }
  if classes is not None:
    out["classes"] = list(classes)
  out["digest"] = exported.manifest_digest(out)
  return out


def write_export(directory: pathlib.Path, function, vocabulary: Sequence[str],
                 text_rule: tokenizer.Tokenizer, manifest_of) -> None:
  """An export's files in `directory`: the function, vocab.json (and the
  SentencePiece model), the loader, and the manifest `manifest_of(files)`
  with every file's sha256."""
  (directory / exported.MODEL_FILE).write_bytes(function.serialize())
  (directory / exported.VOCABULARY_FILE).write_text(
      tokenizer.vocabulary_json(vocabulary, text_rule), encoding="utf-8")
  names = [exported.MODEL_FILE, exported.VOCABULARY_FILE, exported.LOADER_FILE]
  if text_rule.model:
    (directory / exported.SUBWORDS_MODEL_FILE).write_bytes(text_rule.model)
    names.append(exported.SUBWORDS_MODEL_FILE)
  shutil.copyfile(pathlib.Path(exported.__file__),
                  directory / exported.LOADER_FILE)
  files_ = {name: exported.file_digest(directory / name) for name in names}
  (directory / exported.MANIFEST).write_text(json.dumps(
      manifest_of(files_), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_model(workdir: str | pathlib.Path, out_dir: str | pathlib.Path,
                 platforms: Sequence[str] = ("cpu",),
                 fall_back: bool = False,
                 say: Callable[[str], None] = _say) -> pathlib.Path:
  """Exports a workdir's validation-best (else latest) checkpoint into
  `out_dir` (see the module docstring and `flax_sentiment.usage.exported`).

  `out_dir` must be absent, empty, or an earlier export (replaced);
  UserError otherwise, or if the workdir has no usable checkpoint
  (`fall_back`: as in `trained.load_trained_state`). Returns `out_dir`.
  """
  out_dir = pathlib.Path(out_dir)
  platforms = check_platforms(platforms)
  check_out_dir(out_dir)
  if exported.TOKENIZER_VERSION != tokenizer.TOKENIZER_VERSION:
    raise RuntimeError(
        f"flax_sentiment/exported.py implements tokenizer version "
        f"{exported.TOKENIZER_VERSION}, flax_sentiment.data.tokenizer is at "
        f"{tokenizer.TOKENIZER_VERSION}: update exported.py's tokenizer")
  config, vocabulary, state, meta = trained.load_trained_state(
      workdir, fall_back=fall_back, say=say)
  rundir = RunDir(workdir)
  run_config = rundir.saved_config()  # as trained (load may change it)
  config.implementation = "hoisted"
  classes = tokenizer.load_classes(rundir.vocabulary_file)
  model = classifier.model_from_config(config, labels.count(classes))
  if labels.count(classes) == 2:  # scored as P(positive) [b]
    classes = None
  try:
    function = export_function(model, state.params, config.seq_len,
                               platforms)
  except Exception as e:  # pylint: disable=broad-except
    if platforms == ("cpu",):
      raise  # not the user's to fix
    raise UserError(f"cannot export {workdir} for {', '.join(platforms)} "
                    f"({type(e).__name__}: {str(e).splitlines()[0]}); "
                    f"pass fewer --platform values, e.g. --platform "
                    f"cpu") from e
  checkpoint = {**meta, "workdir": str(rundir.path.resolve()),
                "step": int(state.step),
                "which": trained.checkpoint_dir(rundir).name}
  text_rule = trained.load_text_rule(workdir, config)
  write = functools.partial(
      write_export, function=function, vocabulary=vocabulary,
      text_rule=text_rule, manifest_of=lambda files_: manifest(
          run_config, platforms, files_, checkpoint, text_rule.kind,
          classes))

  try:
    with files.atomic_directory(out_dir, flag="--out") as temp:
      write(temp)
      check_out_dir(out_dir)  # again: it may have changed while writing
  except OSError as e:
    raise UserError(f"cannot write --out {out_dir} ({e.strerror or e}); "
                    f"pass a directory you can write to") from e
  return out_dir


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      description="Export a run.py workdir's model (validation-best, else "
      "latest checkpoint) as a directory that scores text with numpy and "
      "jax only: python DIR/exported.py DIR \"text\" ...")
  parser.add_argument("--workdir", required=True, help="a run.py workdir")
  parser.add_argument("--out", required=True,
                      help="the export directory to write (new, empty, or "
                      "an earlier export, which is replaced)")
  parser.add_argument("--platform", action="append", choices=PLATFORMS,
                      help="a platform the export runs on (repeat for "
                      "several; default: cpu)")
  parser.add_argument("--fallback", action="store_true",
                      help="if the newest checkpoint is unreadable, export "
                      "the previous readable one (said on stderr)")
  args = parser.parse_args(argv)
  try:
    out_dir = export_model(args.workdir, args.out,
                           tuple(args.platform or ("cpu",)),
                           fall_back=args.fallback)
  except UserError as e:
    sys.exit(f"error: {e}")
  print(f"Exported {args.workdir} to {out_dir} "
        f"(score: python {out_dir / exported.LOADER_FILE} {out_dir} "
        f"\"text\" ...)")


if __name__ == "__main__":
  main(sys.argv[1:])
