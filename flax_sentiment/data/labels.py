"""What a labeled file's labels mean: the binary label words as always
(0/1, neg/pos, negative/positive, false/true: 0 negative, 1 positive), or
K classes — integers or names — in an order fixed for the run:
`--config.labels` (comma-separated), else integers in numeric order and
names in alphabetical order. `None` stands for the binary words."""

from typing import Iterable

from flax_sentiment.runtime.errors import ConfigError

BINARY = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1,
          "false": 0, "true": 1}
BINARY_HELP = "0/1, neg/pos, negative/positive or false/true"
Classes = tuple[str, ...] | None


def key(value) -> str:
  """A label value as labels are compared: its text stripped and
  lower-cased (a JSON true/false or 0/1 number as its word; "" for a
  missing one: JSON null)."""
  if value is None:
    return ""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  return str(value).strip().lower()


def _numeric(name: str) -> bool:
  return name.lstrip("+-").isdigit()


def classes_of(found: Iterable[str], given: str = "") -> Classes:
  """The classes of a run whose train file holds the label keys `found`:
  those of `given` (--config.labels) in its order, else None for the
  binary words, else the labels found, integers in numeric order or names
  in alphabetical order."""
  if given:
    names = tuple(key(name) for name in given.split(","))
    if len(names) < 2 or "" in names or len(set(names)) < len(names):
      raise ConfigError(
          f"config.labels={given!r}: give two or more distinct label names, "
          f"comma-separated, as the file writes them (e.g. neg,neutral,pos)")
    return names
  found = set(found) - {""}  # empty labels are the reader's error
  if found <= set(BINARY):
    return None
  if all(map(_numeric, found)):
    return tuple(sorted(found, key=int))
  return tuple(sorted(found))


def ids(classes: Classes) -> dict[str, int]:
  """label key -> class id."""
  return dict(BINARY) if classes is None else {
      name: i for i, name in enumerate(classes)}


def help_text(classes: Classes) -> str:
  """The labels a file may hold, for an error line."""
  return BINARY_HELP if classes is None else ", ".join(classes)


def count(classes: Classes) -> int:
  return 2 if classes is None else len(classes)


def beyond_two(classes: Classes) -> tuple[str, ...] | None:
  """The class names of a run of K > 2 classes (its scores: each class's
  probability [n, K]), else None (two classes: P(positive) [n])."""
  return tuple(classes) if count(classes) > 2 else None


def names(classes: Classes) -> tuple[str, ...]:
  """Each class id's name."""
  return ("negative", "positive") if classes is None else classes
