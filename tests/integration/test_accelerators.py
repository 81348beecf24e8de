"""As on a Colab TPU v2-8 (8 devices): the notebook's own commands and every
config in configs/ run unchanged, on 8 forced CPU devices."""

import json
import os
import shlex
import subprocess
import sys
import textwrap


from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"
EIGHT_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8",
                     "JAX_PLATFORMS": "cpu"}
SMALL = ["--config.max_train_examples=512", "--config.max_test_examples=500",
         "--config.num_epochs=1"]


def notebook_commands(prefix: str) -> list[list[str]]:
  """The `!python ...` shell lines of the notebook's code cells that start
  with `prefix` (continuation lines joined), as argv lists."""
  commands = []
  for cell in json.loads(NOTEBOOK.read_text())["cells"]:
    if cell["cell_type"] != "code":
      continue
    source = "".join(cell["source"]).replace("\\\n", " ")
    for line in source.splitlines():
      line = line.strip()
      if line.startswith("!" + prefix):
        commands.append(shlex.split(line[1:]))
  return commands


def run_in(cwd, argv, env_extra, timeout=600):
  env = dict(os.environ, PYTHONUNBUFFERED="1", **env_extra)
  return subprocess.run(argv, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_notebook_commands_run_on_eight_devices(real_data_dir, tmp_path):
  """The notebook's run.py and predict commands as written, plus only
  max_*_examples/num_epochs, from a checkout like the one it clones."""
  for name in ("run.py", "configs", "flax_sentiment"):
    (tmp_path / name).symlink_to(REPO / name)
  train_commands = notebook_commands("python run.py")
  predict_commands = notebook_commands("python -m flax_sentiment.predict")
  assert len(train_commands) == 1 and len(predict_commands) == 1
  env = dict(EIGHT_CPU_DEVICES, TFDS_DATA_DIR=real_data_dir,
             PYTHONPATH=str(REPO))
  argv = [sys.executable] + train_commands[0][1:] + SMALL
  trained = run_in(tmp_path, argv, env)
  assert trained.returncode == 0, trained.stdout + trained.stderr
  assert "8 device(s) (cpu)" in trained.stdout
  assert "epoch 1/1" in trained.stdout
  predicted = run_in(tmp_path, [sys.executable] + predict_commands[0][1:], env)
  assert predicted.returncode == 0, predicted.stderr
  lines = predicted.stdout.strip().splitlines()
  assert len(lines) == 2
  assert all(l.split()[1] in ("positive", "negative") for l in lines)


CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("[!_]*.py")
                 if p.stem != "default")


def test_every_config_runs_a_few_steps_on_eight_devices(tmp_path):
  """Each config file unchanged (default eval_batch_size included) but for
  subset sizes, on fake data, in one process with 8 CPU devices."""
  script = textwrap.dedent(f"""
      import importlib, json, pathlib, sys
      sys.path.insert(0, {str(REPO)!r})
      import jax
      from flax_sentiment.training import loop
      from tests.fake_imdb import mock_imdb
      from tests import classes

      def own_files(config, folder):
        # Four classes of the config's label field (configs/ratings*.py).
        folder.mkdir()
        names = ([1, 2, 7, 10] if config.label_field == "rating" else
                 ["1-2", "3-4", "7-8", "9-10"])
        for split, num, seed in (("dataset", 320, 0), ("test_dataset", 160, 1)):
          config[split] = str(classes.write_jsonl(
              folder / (split + ".jsonl"), names, num, seed,
              label_field=config.label_field))
        if config.unlabeled_dataset:
          texts = [t for t, _ in classes.reviews(names, 160, 2)]
          (folder / "unlabeled.txt").write_text("\\n".join(texts) + "\\n")
          config.unlabeled_dataset = str(folder / "unlabeled.txt")
      assert jax.device_count() == 8
      results = {{}}
      with mock_imdb(320, 160):
        for name in {CONFIGS!r}:
          config = importlib.import_module("flax_sentiment.configs." + name).get_config()
          if config.dataset != "imdb_reviews":  # own files: tiny ones here
            own_files(config, pathlib.Path({str(tmp_path)!r}) / ("data_" + name))
          config.update(dict(max_train_examples=320, num_epochs=1,
                             steps_per_call=4, progress=False,
                             cache_dir={str(tmp_path / "cache")!r}))
          if config.validation_examples:
            config.validation_examples = 64
          history = loop.train_and_evaluate(config, {str(tmp_path)!r} + "/" + name)
          results[name] = history[-1]["test_accuracy"]
      print("RESULTS", json.dumps(results))
      """)
  done = run_in(REPO, [sys.executable, "-c", script], EIGHT_CPU_DEVICES,
                timeout=900)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  results = json.loads(done.stdout.split("RESULTS", 1)[1])
  assert sorted(results) == CONFIGS
  assert all(0.0 <= acc <= 1.0 for acc in results.values())
