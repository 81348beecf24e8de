"""Sentiment of your own text, from a trained workdir.

  python -m flax_sentiment.predict --workdir runs/lstm64 "A wonderful film." "Dull."
"""

import json
import pathlib
import sys
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flax_sentiment import checkpoints, data, models, train
from flax_sentiment.errors import UserError


def encode_texts(texts: Sequence[str], vocabulary: Sequence[str],
                 config) -> np.ndarray:
  """Raw texts -> token ids [len(texts), seq_len], as in training."""
  ids = data.encode([data.tokenize(t) for t in texts], vocabulary)
  return data.pad_sequences(ids, config.seq_len, config.padding,
                            config.truncating)


def load_trained_state(workdir: str | pathlib.Path):
  """(config, vocabulary, state, meta) of a workdir's newest good checkpoint."""
  workdir = pathlib.Path(workdir)
  if not (workdir / "config.json").exists():
    raise UserError(f"{workdir} is not a training workdir (no config.json); "
                    f"pass the --workdir of a run.py run")
  config = ml_collections.ConfigDict(
      json.loads((workdir / "config.json").read_text()))
  vocabulary = data.load_vocabulary(workdir / "vocab.json")
  model = models.model_from_config(config)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(lambda: train.create_train_state(
          model, config, jax.random.key(0))))
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints", keep=1 << 30)
  restored = ckpts.restore_latest(abstract)
  ckpts.close()
  if restored is None:
    raise UserError(f"no usable checkpoint in {workdir / 'checkpoints'}")
  return config, vocabulary, restored[0], restored[1]


def load_predictor(workdir: str | pathlib.Path
                   ) -> Callable[[Sequence[str]], np.ndarray]:
  """A function from texts to P(positive) [len(texts)], using the workdir's
  config, vocabulary and newest good checkpoint."""
  config, vocabulary, state, _ = load_trained_state(workdir)
  model = models.model_from_config(config)
  apply = jax.jit(lambda tokens: jax.nn.sigmoid(
      model.apply({"params": state.params}, tokens)))

  def predict(texts: Sequence[str]) -> np.ndarray:
    return np.asarray(apply(jnp.asarray(encode_texts(texts, vocabulary,
                                                     config))))
  return predict


def main(argv: list[str]) -> None:
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description="Sentiment of your own text.")
  parser.add_argument("--workdir", required=True, help="a run.py workdir")
  parser.add_argument("texts", nargs="+", help="reviews to classify")
  args = parser.parse_args(argv)
  try:
    predict = load_predictor(args.workdir)
  except UserError as e:
    sys.exit(f"error: {e}")
  for text, p in zip(args.texts, predict(args.texts)):
    label = "positive" if p > 0.5 else "negative"
    print(f"{p:.3f}  {label:<8}  {text}")


if __name__ == "__main__":
  main(sys.argv[1:])
