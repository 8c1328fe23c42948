"""Errors that reach the user as one line and an exit code, never as a traceback."""


class UserError(Exception):
  """A problem with the user's input (config, flags, data, workdir).

  The entry points print `str(error)` on one line and exit with `exit_code`.
  """

  exit_code = 2

  def __init__(self, message: str, exit_code: int | None = None):
    super().__init__(message)
    if exit_code is not None:
      self.exit_code = exit_code


class ConfigError(UserError):
  """A config field has a value that is not allowed."""


class DataError(UserError):
  """A dataset is missing, empty or unreadable."""
