"""Every README command a user would copy works as written (with the data
cut small): run.py, the flax-sentiment subcommands and the Python API, in a
fresh folder that has only the repository's run.py and configs/; and every
file the README and docs/ name is tracked by git."""

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
    "best_cpu": "trains word2vec on 50,000 reviews first (minutes)",
    "six_experiments.sh": "runs for hours",
    "export TFDS_DATA_DIR": "the test passes the data folder itself",
    "flax-sentiment serve": "starts a server (tests/test_serve.py)",
    "jupyter": "starts a server",
    "ratings_train.txt": "needs NSMC's 150,000 reviews (not shipped; the "
                         "Korean commands below run on examples/)",
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


def tracked_files() -> set[str]:
  proc = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True,
                        text=True, check=True)
  return set(proc.stdout.splitlines())


def named_paths(text: str) -> set[str]:
  """Repository paths a text names (files and folders, without globs)."""
  found = re.findall(r"(?<![\w/.-])((?:docs|notebooks|benchmarks|configs|"
                     r"flax_sentiment|tests)/[\w/.-]*[\w/]|examples/[\w/.-]+"
                     r"\.\w+)([*{<]?)", text)  # not "examples/s" (a rate)
  return {path for path, glob in found if not glob}


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git clone")
def test_every_path_the_readme_and_docs_name_is_tracked_by_git():
  tracked = tracked_files()
  for doc in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
    for path in named_paths(doc.read_text()):
      path = path.rstrip("/.")
      assert any(t.startswith(path) for t in tracked), (  # a file, folder
          # or output prefix (--out docs/results/x -> x.md)
          f"{doc.relative_to(REPO)} names {path}, which git does not track")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, real_data_dir):
  root = tmp_path_factory.mktemp("readme")
  shutil.copy(REPO / "run.py", root)
  shutil.copytree(REPO / "configs", root / "configs")
  shutil.copytree(REPO / "examples", root / "examples")
  # The README's own-reviews examples: two classes, then three.
  two, three = readme_blocks("csv")
  (root / "reviews.csv").write_text(two)
  (root / "reviews3.csv").write_text(three)
  return root


def is_training(command: str) -> bool:
  return "run.py" in command or command.startswith("flax-sentiment train")


def run(command: str, folder: pathlib.Path, real_data_dir: str):
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             TFDS_DATA_DIR=real_data_dir)
  command = command.replace("flax-sentiment ",
                            "python -m flax_sentiment.cli ", 1)
  args = shlex.split(command.replace("python ", f"{sys.executable} ", 1))
  if "run.py" in command or "flax_sentiment.cli train" in command:
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
  assert sum(map(is_training, ran)) >= 4
  for command in ("report", "predict", "export"):
    assert any(c.startswith(f"flax-sentiment {command}") for c in ran)
  assert any("exported.py" in c for c in ran)
  for run_name in ("lstm64", "rnn512", "mine", "ko"):
    assert (folder / "runs" / run_name / "result.json").is_file()
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
