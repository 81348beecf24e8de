"""The checks a config field's value goes through (`fields.Field.check`):
each returns what the value must be, for the one `error:` line, or None."""

import math
from typing import Any, Callable

# A check returns what the value must be (for the error line), or None.
Check = Callable[[Any], "str | None"]


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def positive_int(value) -> str | None:
  return None if _is_int(value) and value > 0 else "a positive integer"


def non_negative_int(value) -> str | None:
  return (None if _is_int(value) and value >= 0
          else "0 (off) or a positive integer")


def optional_positive_int(value) -> str | None:
  return (None if value is None or (_is_int(value) and value > 0)
          else "a positive integer, or None for no limit")


def optional_int(value) -> str | None:
  return None if value is None or _is_int(value) else "an integer or None"


def positive_number(value) -> str | None:
  return (None if _is_number(value) and value > 0
          else "a finite number > 0, e.g. 1e-3")


def non_negative_number(value) -> str | None:
  return None if _is_number(value) and value >= 0 else "a number >= 0"


def rate(value) -> str | None:
  return (None if _is_number(value) and 0 <= value < 1
          else "a probability in [0, 1)")


def boolean(value) -> str | None:
  return None if isinstance(value, bool) else "True or False"


def text(value) -> str | None:
  return None if isinstance(value, str) and value else "a non-empty string"


def optional_text(value) -> str | None:
  return (None if value is None or (isinstance(value, str) and value)
          else "a non-empty string, or None")


def parse_number_list(value: str) -> list[float]:
  """"0.1,1" -> [0.1, 1.0] (ValueError unless finite numbers > 0)."""
  numbers = [float(part) for part in str(value).split(",")]
  if not numbers or not all(math.isfinite(x) and x > 0 for x in numbers):
    raise ValueError(value)
  return numbers


def number_list(value) -> str | None:
  try:
    parse_number_list(value)
    return None if isinstance(value, str) else "a string"
  except ValueError:
    return "comma-separated numbers > 0, e.g. '0.1,1'"


def one_of(*allowed: str) -> Check:
  def check(value) -> str | None:
    return None if value in allowed else f"one of: {', '.join(allowed)}"
  check.choices = allowed
  return check
