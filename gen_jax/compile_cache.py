"""Atomic writes for JAX's persistent compilation cache.

Processes sharing one cache directory (a sweep's concurrent trials, the
test suite's workers) race on it: JAX 0.10.2's file cache writes an entry
in place (`LRUCache.put`: `path.write_bytes`), so another process that looks
the same program up meanwhile reads a truncated executable, and
deserializing it crashed a test worker with a segmentation fault.
`make_writes_atomic` makes every entry appear whole or not at all: written
to a file of its own, then renamed over (a rename within a directory is
atomic on POSIX). With eviction on (JAX_COMPILATION_CACHE_MAX_SIZE set),
JAX's own locked put is kept.
"""

import os


def make_writes_atomic() -> None:
  """Patches JAX's file cache once per process; a no-op when JAX's cache
  class is not the one this was written for."""
  try:
    from jax._src import lru_cache
  except ImportError:
    return
  cls = getattr(lru_cache, "LRUCache", None)
  suffix = getattr(lru_cache, "_CACHE_SUFFIX", None)
  if cls is None or suffix is None or getattr(cls.put, "_atomic", False):
    return
  original = cls.put

  def put(self, key: str, value: bytes) -> None:
    if not key or getattr(self, "eviction_enabled", True):
      return original(self, key, value)
    path = self.path / f"{key}{suffix}"
    if path.exists():
      return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(value)
    os.replace(tmp, path)
    return None

  put._atomic = True
  cls.put = put
