"""runtime/files.py: a file or folder lands whole or not at all, a failed
write leaves nothing behind and is one line; and it is the only place in
the package that puts files in place."""

import ast
import errno
import os

import numpy as np
import pytest

from flax_sentiment.runtime import files
from flax_sentiment.runtime.errors import UserError
from tests.conftest import REPO


def full_disk(*unused_args, **unused_kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


def test_a_file_lands_whole_and_an_unchanged_one_is_not_rewritten(tmp_path):
  path = tmp_path / "sub" / "a.json"
  assert files.write_atomic(path, '{"a": 1}')
  assert path.read_text() == '{"a": 1}'
  before = path.stat().st_mtime_ns
  assert not files.write_atomic(path, '{"a": 1}')
  assert path.stat().st_mtime_ns == before
  assert files.write_atomic(path, b'{"a": 2}')
  assert path.read_bytes() == b'{"a": 2}'
  assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_full_disk_midway_is_one_line_keeps_the_old_file_and_no_partial(
    tmp_path):
  path = tmp_path / "table.npz"
  files.write_atomic(path, b"old")
  with pytest.raises(UserError) as error:
    with files.atomic_file(path, flag="--config.cache_dir") as f:
      f.write(b"x" * 3_000_000)  # part of it was written
      full_disk()
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith(f"no space left on the disk of {path} (about "
                            "3.0 MB more")  # at least what was written
  assert "--config.cache_dir" in message
  assert path.read_bytes() == b"old"
  assert [p.name for p in tmp_path.iterdir()] == ["table.npz"]


def test_a_failed_rename_is_one_line_and_leaves_no_partial(tmp_path,
                                                           monkeypatch):
  def refused(*unused):
    raise OSError(errno.EACCES, "Permission denied")
  monkeypatch.setattr(os, "replace", refused)
  with pytest.raises(UserError, match=r"^cannot write .*a\.txt \(Permission "
                     r"denied\); pass another --workdir$"):
    files.write_atomic(tmp_path / "a.txt", "text")
  assert list(tmp_path.iterdir()) == []


def test_an_error_in_the_block_is_raised_as_it_is_and_leaves_nothing(
    tmp_path):
  with pytest.raises(ZeroDivisionError):
    with files.atomic_file(tmp_path / "a.npy") as f:
      np.save(f, np.arange(3))
      _ = 1 / 0
  assert list(tmp_path.iterdir()) == []


def test_a_folder_is_replaced_only_once_the_new_one_is_complete(tmp_path):
  folder = tmp_path / "model"
  with files.atomic_directory(folder) as partial:
    (partial / "weights").write_text("1")
  assert (folder / "weights").read_text() == "1"
  with pytest.raises(ZeroDivisionError):
    with files.atomic_directory(folder) as partial:
      (partial / "weights").write_text("2")
      _ = 1 / 0
  assert (folder / "weights").read_text() == "1"
  with files.atomic_directory(folder) as partial:
    (partial / "other").write_text("3")
  assert sorted(p.name for p in folder.iterdir()) == ["other"]
  assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_full_disk_in_a_folder_is_one_line_and_keeps_the_old_one(tmp_path):
  folder = tmp_path / "export"
  with files.atomic_directory(folder) as partial:
    (partial / "a").write_text("old")
  with pytest.raises(UserError, match=r"^no space left on the disk of .*"
                     r"pass another --out"):
    with files.atomic_directory(folder, flag="--out") as partial:
      (partial / "a").write_text("new")
      full_disk()
  assert (folder / "a").read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["export"]


# Calls that put a file in place (or make a scratch one to do so).
PLACING = {("os", "replace"), ("os", "rename"), ("tempfile", "mkdtemp"),
           ("tempfile", "NamedTemporaryFile")}


def placing_calls(source: str) -> list[str]:
  found = []
  for node in ast.walk(ast.parse(source)):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and (node.func.value.id, node.func.attr) in PLACING):
      found.append(f"{node.func.value.id}.{node.func.attr}:{node.lineno}")
    elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
          and (".tmp" in node.value or ".partial" in node.value)):
      found.append(f"{node.value!r}:{node.lineno}")
  return found


def test_no_module_but_files_puts_files_in_place():
  found = {}
  for path in (REPO / "flax_sentiment").rglob("*.py"):
    if path.name == "files.py" and path.parent.name == "runtime":
      continue
    calls = placing_calls(path.read_text())
    if calls:
      found[str(path.relative_to(REPO))] = calls
  assert found == {}


def test_the_scan_sees_a_hand_written_atomic_write():
  source = ("import os\npartial = path.with_name('a.tmp')\n"
            "os.replace(partial, path)\n")
  assert sorted(placing_calls(source)) == ["'a.tmp':2", "os.replace:3"]
