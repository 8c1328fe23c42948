"""One of two processes for tests/test_preemption.py: steps until told to stop.

  python tests/preemption_worker.py COORDINATOR_ADDRESS PROCESS_ID

Prints 'ready' once jax.distributed is up, then 'stop STEP SIGNAL' when the
preemption watcher says to save at STEP. The two processes step at different
speeds, as real hosts do.
"""

import sys
import time

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                           process_id=int(sys.argv[2]))

from gen_jax import preemption  # noqa: E402

watcher = preemption.Watcher()
print("ready", flush=True)
for step in range(1, 1_000_000):
  time.sleep(0.01 * (1 + jax.process_index()))
  if watcher.reached(step):
    print(f"stop {step} {watcher.signal_name}", flush=True)
    break
watcher.close()
