"""Every README command a user would copy works as written (with the data
cut small): run.py, report, predict and the Python API, in a fresh folder
that has only the repository's run.py and configs/."""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
SMALL = ["--config.max_train_examples=64", "--config.max_test_examples=32",
         "--config.num_epochs=1", "--config.progress=False"]
# Commands the test does not run, and why.
NOT_RUN = {
    "pip install": "installs packages",
    "python -m pytest": "is this test suite",
    "tensorboard": "starts a server",
    "configs/best_cpu.py": "trains word2vec on 50,000 reviews first (minutes)",
    "six_experiments.sh": "runs for hours",
}


def readme_blocks(language: str) -> list[str]:
  return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def shell_commands() -> list[str]:
  """The README's bash lines, continuations joined, comments dropped."""
  commands = []
  for block in readme_blocks("bash"):
    for command in block.replace("\\\n", " ").splitlines():
      command = command.split("  #")[0].strip()
      if command and not command.startswith("#"):
        commands.append(command)
  return commands


def test_the_readme_names_only_configs_and_files_that_exist():
  for name in re.findall(r"configs/\w+\.py", README):
    assert (REPO / name).is_file(), name
  for name in re.findall(r"(?:docs|notebooks|benchmarks)/[\w/.-]+\.\w+",
                         README):
    if "{" not in name:
      assert (REPO / name).exists(), name


@pytest.fixture(scope="module")
def folder(tmp_path_factory, real_data_dir):
  root = tmp_path_factory.mktemp("readme")
  shutil.copy(REPO / "run.py", root)
  shutil.copytree(REPO / "configs", root / "configs")
  return root


def run(command: str, folder: pathlib.Path, real_data_dir: str):
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             TFDS_DATA_DIR=real_data_dir)
  args = shlex.split(command.replace("python ", f"{sys.executable} ", 1))
  if "run.py" in command:
    args += SMALL
  return subprocess.run(args, cwd=folder, env=env, capture_output=True,
                        text=True, timeout=600)


def test_readme_commands_work_as_written(folder, real_data_dir):
  ran = []
  for command in shell_commands():
    if any(skip in command for skip in NOT_RUN):
      continue
    if command.startswith("printf"):
      subprocess.run(command, shell=True, cwd=folder, check=True)
      continue
    proc = run(command, folder, real_data_dir)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, command
    ran.append(command)
  assert sum("run.py" in c for c in ran) >= 3
  assert any("flax_sentiment.report" in c for c in ran)
  assert sum("flax_sentiment.predict" in c for c in ran) >= 2
  assert (folder / "runs" / "lstm64" / "result.json").is_file()
  assert (folder / "runs" / "rnn512" / "result.json").is_file()
  assert (folder / "runs" / "report.png").is_file()


def test_readme_python_api_example_runs(folder, real_data_dir):
  (code,) = [b for b in readme_blocks("python") if "api.load_config" in b]
  code = code.replace("max_train_examples=2000, num_epochs=2",
                      "max_train_examples=64, max_test_examples=32, "
                      "num_epochs=1")
  script = folder / "api_example.py"
  script.write_text(code)
  proc = run(f"python {script}", folder, real_data_dir)
  assert proc.returncode == 0, proc.stderr
  assert "test_accuracy" in proc.stdout
