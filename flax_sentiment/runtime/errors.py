"""Errors a user can fix; `run.py` prints them as one line, no traceback."""


class UserError(Exception):
  """Bad input: the message names the bad value and the fix."""


class ConfigError(UserError):
  """A config field has a value that is not allowed."""


class DataNotFoundError(UserError):
  """The IMDB data is neither on disk nor downloadable."""
