"""Interleaved timing helpers shared by the bench scripts (not tests)."""

import os
import statistics
import time
from collections.abc import Callable

Fn = Callable[[], object]


def load_average() -> str:
  """The 1/5/15-minute load average, to record next to every timing."""
  return " ".join(f"{v:.2f}" for v in os.getloadavg())


def time_once(fn: Fn) -> float:
  """Seconds for one call; `fn` must block until its result is ready."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def interleaved(fns: dict[str, Fn], repeats: int, warmup: int = 1,
                cpu: dict[str, list[float]] | None = None
                ) -> dict[str, list[float]]:
  """Times every function `repeats` times, round-robin, after `warmup` calls.

  Returns wall-clock seconds per call. Round-robin order spreads slow phases of
  a noisy (shared) machine over all candidates instead of penalising whichever
  ran during them. If `cpu` is a dict, it receives this process's CPU seconds
  (all threads) per call: on a loaded machine that is steadier than wall time
  for comparing two variants of the same framework (not across frameworks,
  whose thread pools spin differently).
  """
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start_cpu = time.process_time()
      times[name].append(time_once(fn))
      if cpu is not None:
        cpu.setdefault(name, []).append(time.process_time() - start_cpu)
  return times


def median_ms(seconds: list[float]) -> float:
  return 1e3 * statistics.median(seconds)


def spread_ms(seconds: list[float]) -> str:
  """min-max range, to show how noisy a median is."""
  return f"{1e3 * min(seconds):.0f}-{1e3 * max(seconds):.0f}"
