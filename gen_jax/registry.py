"""Name -> function registries whose errors list every registered name."""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gen_jax.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
  """A dictionary of named entries, filled with the `register` decorator.

  `field` is the dotted config path that selects an entry, so that a wrong
  name is reported as e.g. "config.gan.loss='foo' is not one of: hinge, ...".
  """

  def __init__(self, field: str):
    self.field = field
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def add(entry: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.field}: {name!r} is registered twice")
      self._entries[name] = entry
      return entry
    return add

  def add(self, name: str, entry: T) -> T:
    return self.register(name)(entry)

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise ConfigError(
          f"{self.field}={name!r} is not one of: {', '.join(self.names())}")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
