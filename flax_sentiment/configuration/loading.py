"""Finding and loading config files: a name (`lstm`, one of the configs the
package ships, `flax_sentiment.configs`) or a path (`configs/lstm.py`,
`path/to/mine.py`), from any folder.

`load(spec)` returns the file's `get_config()` (a `spec` may end in
`:ARG`, passed as `get_config(ARG)`). Anything wrong — a missing file, a
folder, a syntax error, an exception or failed import in the file, no
`get_config`, one that returns no ConfigDict — raises `ConfigError` with one
line naming the file (and line). `resolve_paths` makes the config's relative
paths absolute, once, at start.
"""

import importlib
import importlib.util
import os
import pathlib
import sys
import traceback

import ml_collections

from flax_sentiment.runtime.errors import ConfigError

PACKAGE = "flax_sentiment.configs"
# Config fields that name files or folders (relative to where you run).
PATH_FIELDS = ("data_dir", "cache_dir", "test_dataset", "unlabeled_dataset")


def packaged_dir() -> pathlib.Path:
  """The folder of the configs the package ships (the repository's
  configs/ in a clone)."""
  return pathlib.Path(importlib.import_module(PACKAGE).__file__).parent


def names() -> list[str]:
  """The shipped configs' names (e.g. lstm, rnn, best_cpu)."""
  return sorted(p.stem for p in packaged_dir().glob("[!_]*.py"))


def _looks_like_path(spec: str) -> bool:
  return spec.endswith(".py") or os.sep in spec or "/" in spec


def _where(error: BaseException, path: pathlib.Path) -> str:
  """`path:line` of the deepest frame of `error` inside `path`."""
  if isinstance(error, SyntaxError) and error.lineno:
    return f"{path}:{error.lineno}"
  line = None
  for frame in traceback.extract_tb(error.__traceback__):
    if pathlib.Path(frame.filename).resolve() == path.resolve():
      line = frame.lineno
  return f"{path}:{line}" if line else str(path)


def import_file(path: pathlib.Path):
  """The module of a config file: a shipped one by its package name (so its
  `from flax_sentiment.configs import default` is the same module), any
  other by its path."""
  if path.resolve().parent == packaged_dir().resolve():
    name = f"{PACKAGE}.{path.stem}"
    if name in sys.modules:
      return sys.modules[name]
    return importlib.import_module(name)
  spec = importlib.util.spec_from_file_location(
      f"flax_sentiment_user_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def find(spec: str) -> pathlib.Path:
  """The file a `--config` value names (without its `:ARG`)."""
  if not _looks_like_path(spec):
    path = packaged_dir() / f"{spec}.py"
    if not path.is_file():
      raise ConfigError(f"no config named {spec!r}; use one of "
                        f"{', '.join(names())}, or a path to a .py file")
    return path
  path = pathlib.Path(spec).expanduser()
  if path.is_dir():
    raise ConfigError(f"--config {spec} is a folder; pass a config file in "
                      f"it (e.g. {path / 'lstm.py'}) or a name such as lstm")
  if not path.is_file():
    hint = (f" (from {pathlib.Path.cwd()}; the shipped one is --config "
            f"{path.stem})" if path.stem in names() else "")
    raise ConfigError(f"config file {spec} not found{hint}; pass a name ("
                      f"{', '.join(names())}) or a path to a .py file")
  return path


def load_module(path: pathlib.Path):
  """The module of config file `path`; anything its import raises becomes
  a ConfigError naming the file and line."""
  try:
    return import_file(path)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"config file {_where(e, path)}: "
                      f"{type(e).__name__}: {_first_line(e)}") from None


def call(path: pathlib.Path, function, *args):
  """function(*args) of config file `path`; an exception becomes a
  ConfigError naming the file and line."""
  try:
    return function(*args)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"config file {_where(e, path)}: {function.__name__}() "
                      f"raised {type(e).__name__}: {_first_line(e)}") from None


def load(spec: str) -> ml_collections.ConfigDict:
  """`get_config()` of the config `spec` names (see the module docstring)."""
  spec, _, arg = spec.partition(":")
  path = find(spec)
  module = load_module(path)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"config file {path} has no get_config() function; "
                      f"define one that returns an ml_collections.ConfigDict")
  config = call(path, get_config, *([arg] if arg else []))
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"config file {path}: get_config() returned "
                      f"{type(config).__name__}, not an "
                      f"ml_collections.ConfigDict; end it with `return "
                      f"config`")
  return config


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else "(no message)"


def resolve_paths(config) -> None:
  """Makes the config's relative paths absolute, so every later step and
  subprocess sees the same folders (a relative TFDS_DATA_DIR is made
  absolute when the package is imported)."""
  def absolute(value: str) -> str:
    return str(pathlib.Path(value).expanduser().absolute())
  for field in PATH_FIELDS:
    if config[field]:
      config[field] = absolute(config[field])
  if config.dataset != "imdb_reviews":
    config.dataset = absolute(config.dataset)

