"""One-line checks of config values, shared by every owner of a config group.

Each raises ConfigError naming the field, its value and what is allowed.
"""

from gen_jax.errors import ConfigError


def one_of(field: str, value, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of: "
                      f"{', '.join(map(str, allowed))}")


def positive(field: str, value) -> None:
  if not value > 0:
    raise ConfigError(f"{field}={value!r} must be positive")


def at_least(field: str, value, low, note: str = "") -> None:
  if not value >= low:
    raise ConfigError(f"{field}={value!r} must be >= {low}"
                      + (f" ({note})" if note else ""))
