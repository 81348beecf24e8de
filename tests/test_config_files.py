"""Configs by name or path, from any folder; a broken config file is one
line naming the file (and line)."""

import subprocess
import sys

import pytest

from flax_sentiment.configuration import loading
from flax_sentiment.runtime.errors import ConfigError
from tests.conftest import REPO, one_error_line


@pytest.mark.parametrize("source,says", [
    ("x = 1/0\n", r"mine.py:1: ZeroDivisionError"),
    ("def get_config(:\n  pass\n", r"mine.py:1: SyntaxError"),
    ("import no_such_module_here\n", r"mine.py:1: ModuleNotFoundError"),
    ("X = 1\n", r"mine.py has no get_config\(\)"),
    ("def get_config():\n  pass\n", r"get_config\(\) returned NoneType"),
    ("def get_config():\n  return {}['seq_len']\n",
     r"mine.py:2: get_config\(\) raised KeyError"),
])
def test_a_broken_config_file_is_one_line_with_file_and_line(
    tmp_path, source, says):
  path = tmp_path / "mine.py"
  path.write_text(source)
  with pytest.raises(ConfigError, match=says) as error:
    loading.load(str(path))
  assert "\n" not in str(error.value)


def test_names_paths_folders_and_an_own_config(tmp_path):
  assert loading.load("rnn").cell == "rnn"
  assert loading.load(str(REPO / "configs" / "lstm.py")).cell == "lstm"
  with pytest.raises(ConfigError, match=r"no config named 'lsmt'; use one "
                     r"of .*lstm"):
    loading.load("lsmt")
  with pytest.raises(ConfigError, match=r"is a folder"):
    loading.load(str(REPO / "configs"))
  mine = tmp_path / "mine.py"
  mine.write_text("from flax_sentiment.configs import default\n\n"
                  "def get_config(arg='8'):\n"
                  "  config = default.get_config()\n"
                  "  config.hidden_dim = int(arg)\n"
                  "  return config\n")
  assert loading.load(f"{mine}:16").hidden_dim == 16


def test_the_console_script_from_root_and_help_into_a_closed_pipe():
  proc = subprocess.run(
      f"{sys.executable} -m flax_sentiment.cli train --config best_cpu "
      f"--help | head -3", shell=True, cwd="/", capture_output=True,
      text=True, timeout=120)
  assert proc.stdout.splitlines()[0].startswith("Trains a sentiment")
  # A reader that is gone before the first write: the write gets EPIPE.
  proc = subprocess.run(
      f"{sys.executable} -m flax_sentiment.cli train --config best_cpu "
      f"--help | true; exit ${{PIPESTATUS[0]}}", shell=True,
      executable="/bin/bash", cwd="/", capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 0 and proc.stderr == ""
  line = one_error_line(subprocess.run(
      [sys.executable, "-m", "flax_sentiment.cli", "train", "--config",
       str(REPO / "configs")], cwd="/", capture_output=True, text=True,
      timeout=120))
  assert "is a folder" in line
