"""JAX's persistent compilation cache with atomic writes
(gen_jax/compile_cache.py; conftest.py installs it)."""

import os

from jax._src import lru_cache

from gen_jax import compile_cache


def test_entries_appear_whole_through_a_rename(tmp_path, monkeypatch):
  compile_cache.make_writes_atomic()
  compile_cache.make_writes_atomic()  # idempotent
  assert lru_cache.LRUCache.put._atomic
  renames = []
  real_replace = os.replace
  monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)),
                                                   real_replace(a, b)))
  cache = lru_cache.LRUCache(str(tmp_path), max_size=-1)
  value = os.urandom(1 << 20)
  cache.put("k", value)
  assert cache.get("k") == value
  # written under another name, then renamed onto the entry; nothing left
  [(src, dst)] = renames
  assert str(dst).endswith("k" + lru_cache._CACHE_SUFFIX) and src != dst
  assert sorted(os.listdir(tmp_path)) == ["k" + lru_cache._CACHE_SUFFIX]
  cache.put("k", b"other")  # an existing entry is kept, as JAX's put does
  assert cache.get("k") == value and len(renames) == 1
