"""The package as a user installs it: a wheel (not editable) in a fresh
venv, used from a folder that is not the repository."""

import json
import os
import pathlib
import site
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO
from tests.test_sources import write_reviews_csv


def run(*args, cwd, timeout=300, env=None):
  proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env=env)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
  """A venv with the built wheel installed; the dependencies come from this
  interpreter's site-packages (no network, no 1.3 GB install)."""
  root = tmp_path_factory.mktemp("wheel")
  run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
      "--quiet", "-w", root / "dist", REPO, cwd=root)
  wheel, = (root / "dist").glob("flax_sentiment-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert "flax_sentiment/configs/lstm.py" in names
  assert "flax_sentiment/configs/best_cpu.py" in names
  assert "flax_sentiment/usage/serve_page.html" in names
  for folder in (REPO / "flax_sentiment").iterdir():
    if (folder / "__init__.py").exists():  # every role folder ships
      assert f"flax_sentiment/{folder.name}/__init__.py" in names
  run(sys.executable, "-m", "venv", root / "venv", cwd=root)
  python = root / "venv" / "bin" / "python"
  # This interpreter's packages (it may itself be a venv, whose packages
  # --system-site-packages would not see), behind the venv's own: a plain
  # path, so their .pth files (this checkout's editable install) stay out.
  venv_site = run(python, "-c", "import site; print(site.getsitepackages()[0])",
                  cwd=root).stdout.strip()
  pathlib.Path(venv_site, "dependencies.pth").write_text(
      "\n".join(site.getsitepackages()) + "\n")
  run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
      wheel, cwd=root)
  return root / "venv"


def clean_env() -> dict:
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return dict(env, JAX_PLATFORMS="cpu")


def test_installed_package_is_the_wheel_and_loads_configs_from_root(venv):
  proc = run(venv / "bin" / "python", "-c",
             "import flax_sentiment, flax_sentiment.api as api; "
             "print(flax_sentiment.__file__); "
             "print(api.load_config('best_cpu').num_words)",
             cwd="/", env=clean_env())
  where, words = proc.stdout.split()
  assert pathlib.Path(where).is_relative_to(venv)  # not the repository
  assert words == "30000"


def test_console_script_trains_a_tiny_run_from_another_folder(venv, tmp_path):
  write_reviews_csv(tmp_path / "reviews.csv", 96, 0)
  script = venv / "bin" / "flax-sentiment"
  proc = run(script, "--help", cwd=tmp_path, env=clean_env())
  for command in ("train", "predict", "report", "ensemble", "export"):
    assert command in proc.stdout
  run(script, "train", "--config", "lstm", "--config.dataset=reviews.csv",
      "--config.num_words=64", "--config.embed_dim=8", "--config.hidden_dim=8",
      "--config.seq_len=16", "--config.batch_size=8", "--config.num_epochs=1",
      "--config.cache_dir=cache", "--workdir=run", cwd=tmp_path,
      env=clean_env())
  assert json.loads((tmp_path / "run" / "result.json").read_text())[
      "epochs_trained"] == 1
  proc = run(script, "predict", "--workdir", "run", "A wonderful film.",
             cwd=tmp_path, env=clean_env())
  assert "positive" in proc.stdout or "negative" in proc.stdout


def test_the_clone_runs_beside_a_plain_install(venv):
  """After `pip install .` (not editable), `python run.py` and the tests
  in the clone import the clone's package, which must still find the
  configs at the repository's top."""
  proc = run(venv / "bin" / "python", "run.py", "--config", "lstm", "--help",
             cwd=REPO, env=clean_env())
  assert "--config.seq_len" in proc.stdout + proc.stderr
  proc = run(venv / "bin" / "python", "-c",
             "import flax_sentiment, flax_sentiment.configs.lstm as c; "
             "print(flax_sentiment.__file__); print(c.__file__)",
             cwd=REPO, env=clean_env())
  package, config = map(pathlib.Path, proc.stdout.split())
  assert package.is_relative_to(REPO) and config == REPO / "configs" / "lstm.py"
