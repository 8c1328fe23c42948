"""The CLI with one injected fault, for tests/test_resume.py.

  python tests/faulty_main.py FAULT N --config=... --workdir=...

FAULT is one of
  kill_mid_save     SIGKILL while checkpoint N is being written: its items are
                    in the tmp dir but not committed, the step not renamed
  kill_in_eval      SIGKILL during the evaluation at step N (before its PNG)
  kill_at_batch     SIGKILL when this process draws its N-th training batch;
                    the loop is then a step or two behind: mid-training
  sigterm_at_batch  SIGTERM at the N-th batch (preemption)
  sigint_at_batch   SIGINT at the N-th batch (Ctrl-C)

The faults are monkeypatched in from here, so the library has no test hooks;
each test checks that its fault really fired.
"""

import os
import signal
import sys


def _die(signum=signal.SIGKILL):
  os.kill(os.getpid(), signum)


def install(fault: str, n: int) -> None:
  if fault == "kill_mid_save":
    from orbax.checkpoint._src.path import atomicity
    cls = atomicity.AtomicRenameTemporaryPath
    finalize = cls.finalize

    async def killing_finalize(self, *args, **kwargs):
      # Items of step n are finalized inside `<n>.orbax-checkpoint-tmp*/`.
      if self._final_path.parent.name.startswith(f"{n}.orbax-checkpoint-tmp"):
        _die()
      return await finalize(self, *args, **kwargs)
    cls.finalize = killing_finalize
  elif fault == "kill_in_eval":
    from gen_jax import plots
    save_png = plots.save_png

    def killing_save_png(path, picture):
      if path.endswith(f"step_{n:07d}.png"):
        _die()
      return save_png(path, picture)
    plots.save_png = killing_save_png
  elif fault.endswith("_at_batch"):
    from gen_jax.data import base
    signum = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM,
              "sigint": signal.SIGINT}[fault.split("_")[0]]
    next_batch = base.ArrayStream.__next__
    count = [0]

    def counting_next(self):
      count[0] += 1
      if count[0] == n:
        _die(signum)
      return next_batch(self)
    base.ArrayStream.__next__ = counting_next
  else:
    raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
  fault, n = sys.argv[1], int(sys.argv[2])
  install(fault, n)
  from gen_jax import main
  sys.argv = [sys.argv[0], *sys.argv[3:]]
  main.run()
