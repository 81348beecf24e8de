"""The command line (run.py): --help, and one-line errors with nothing
written, before anything is read or compiled."""

import errno
import os
import subprocess
import sys
import tempfile

import pytest

from flax_sentiment.configs import default
from flax_sentiment.tracking import rundir
from flax_sentiment.configuration.fields import FIELDS
from flax_sentiment.runtime.errors import UserError
from tests.conftest import REPO, one_error_line, run_py


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_field_with_its_default_and_meaning(flag):
  proc = run_py("--config", "configs/rnn.py", flag)
  assert proc.returncode == 0, proc.stderr
  config = default.get_config()
  for field in config.keys():
    line = next(l for l in proc.stdout.splitlines()
                if l.strip().startswith(f"--config.{field} "))
    assert FIELDS[field].help in line
  assert "--config.cell" in proc.stdout and "'rnn'" in proc.stdout


def test_every_field_has_help():
  assert list(default.get_config().keys()) == sorted(FIELDS)


def test_stray_positional_argument_is_one_line():
  line = one_error_line(run_py("configs/rnn.py"))  # --config forgotten
  assert "'configs/rnn.py'" in line and "--config configs/rnn.py" in line


def test_missing_config_file_is_one_line():
  line = one_error_line(run_py("--config", "configs/nope.py"))
  assert "configs/nope.py not found" in line and "lstm" in line


@pytest.mark.parametrize("where", ["file", "below_file"])
def test_workdir_that_is_or_lies_below_a_file(where, tmp_path):
  blocker = tmp_path / "taken"
  blocker.write_text("keep me")
  workdir = blocker if where == "file" else blocker / "run"
  line = one_error_line(run_py("--config", "configs/lstm.py",
                               f"--workdir={workdir}",
                               f"--config.cache_dir={tmp_path / 'cache'}"))
  assert str(workdir) in line and "--workdir" in line
  assert blocker.read_text() == "keep me"
  assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("flags,says", [
    (["--config.implementation=pallas"], "Hopper"),
    (["--config.implementation=pallas", "--config.unroll=8"], "unroll=8"),
])
def test_pallas_where_it_cannot_run_is_one_line(flags, says, tmp_path):
  """On a CPU (or TPU, or an older GPU) the Mosaic GPU kernels cannot run:
  one line before anything is read or written."""
  line = one_error_line(run_py("--config", "configs/lstm.py", *flags,
                               f"--workdir={tmp_path / 'run'}",
                               f"--config.cache_dir={tmp_path / 'cache'}"))
  assert says in line and "implementation" in line
  assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_missing_data_is_one_line_without_library_logs(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "nodata"),
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "run.py", "--config", "configs/lstm.py",
       f"--workdir={tmp_path / 'run'}", "--config.download=False",
       f"--config.cache_dir={tmp_path / 'cache'}"], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=120)
  line = one_error_line(proc)  # no tfds "dataset_info.json" line before it
  assert "IMDB data not found" in line and str(tmp_path / "nodata") in line
  assert not (tmp_path / "run").exists()


def test_read_only_directory_is_refused_naming_it(tmp_path, monkeypatch):
  """(As root, permissions do not stop writes; a read-only file system is
  simulated where the check probes it.)"""
  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")
  monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
  with pytest.raises(UserError, match=r"cache directory .* read-only .* "
                     r"--config.cache_dir"):
    rundir.check_writable_dir(tmp_path / "cache", "cache directory",
                               "--config.cache_dir")
  assert not (tmp_path / "cache").exists()
