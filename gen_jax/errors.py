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


class NonFiniteError(UserError):
  """A loss or the updated state went NaN/Inf (config.train.on_nonfinite=stop)."""

  exit_code = 3


class Preempted(Exception):
  """The run saved a checkpoint after SIGTERM/SIGINT and stopped early.

  Not an error: the CLI prints the message and exits with status 0; running
  the same command again resumes from the checkpoint at `step`.
  """

  def __init__(self, step: int, signal_name: str):
    super().__init__(f"preempted ({signal_name}) at step {step}: checkpoint "
                     "saved; run the same command again to resume")
    self.step = step
    self.signal_name = signal_name
