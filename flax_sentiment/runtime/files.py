"""Every file and folder the project writes goes through here: it lands in
its place whole or not at all (written beside it, then `os.replace`d: a
kill leaves the old one or none), a failed write leaves no partial file
behind, and an OSError becomes one `UserError` line (a full disk says how
much was needed and is free)."""

import contextlib
import errno
import os
import pathlib
import shutil
import tempfile
from typing import BinaryIO, Iterator

from flax_sentiment.runtime.errors import UserError


def disk_error(path: pathlib.Path, error: OSError, needed: int | None = None,
               flag: str = "--workdir") -> UserError:
  """One line for a write to `path` that failed; `flag` names the option
  that picks another place."""
  if error.errno == errno.ENOSPC:
    try:
      free = shutil.disk_usage(pathlib.Path(path).parent).free
    except OSError:
      free = 0
    need = f"about {needed / 1e6:.1f} MB more, " if needed else ""
    return UserError(f"no space left on the disk of {path} ({need}"
                     f"{free / 1e6:.1f} MB free); free some space or pass "
                     f"another {flag}; files written before are untouched")
  return UserError(f"cannot write {path} ({error.strerror}); pass another "
                   f"{flag}")


def _partial_name(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_file(path: str | pathlib.Path, flag: str = "--workdir"
                ) -> Iterator[BinaryIO]:
  """A binary file to write `path` through (e.g. `np.savez(f, ...)`): it
  replaces `path` when the block ends without an error; on any error the
  partial file is removed, and an OSError is raised as one UserError."""
  path = pathlib.Path(path)
  partial = _partial_name(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as f:
      yield f
    os.replace(partial, path)
  except OSError as e:
    written = partial.stat().st_size if partial.exists() else 0
    partial.unlink(missing_ok=True)
    raise disk_error(path, e, written or None, flag) from None
  except BaseException:
    partial.unlink(missing_ok=True)
    raise


def write_atomic(path: str | pathlib.Path, content: str | bytes,
                 flag: str = "--workdir", skip_unchanged: bool = True
                 ) -> bool:
  """Writes `content` to `path` atomically, unless (`skip_unchanged`) it
  already holds exactly that. Returns whether it wrote."""
  path = pathlib.Path(path)
  data = content.encode() if isinstance(content, str) else content
  if skip_unchanged and path.is_file() and path.read_bytes() == data:
    return False
  with atomic_file(path, flag) as f:
    f.write(data)
  return True


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_directory(directory: str | pathlib.Path, flag: str = "--workdir"
                     ) -> Iterator[pathlib.Path]:
  """A fresh folder beside `directory` to write its new content into; when
  the block ends without an error it takes `directory`'s place (an earlier
  one there is removed only once the new one is in place). On any error
  nothing new is left behind and the earlier one stays."""
  directory = pathlib.Path(directory)
  old = None
  try:
    directory.parent.mkdir(parents=True, exist_ok=True)
    temp = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.",
                                         dir=directory.parent))
  except OSError as e:
    raise disk_error(directory, e, None, flag) from None
  try:
    yield temp
    os.chmod(temp, 0o777 & ~_umask())
    if directory.is_dir() and any(directory.iterdir()):
      old = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.",
                                          dir=directory.parent))
      os.replace(directory, old)  # onto the empty folder just made
    try:
      os.replace(temp, directory)
    except OSError:
      if old is not None:
        os.replace(old, directory)
        old = None
      raise
  except OSError as e:
    raise disk_error(directory, e, None, flag) from None
  finally:
    shutil.rmtree(temp, ignore_errors=True)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
