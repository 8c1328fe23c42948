"""SIGTERM/SIGINT: the loop is told to save and stop at one agreed step."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REPO
from gen_jax import preemption


@pytest.mark.parametrize("signum,name", [(signal.SIGTERM, "SIGTERM"),
                                         (signal.SIGINT, "SIGINT")])
def test_single_process_signal_stops_at_the_next_step(signum, name, capsys):
  before = signal.getsignal(signum)
  watcher = preemption.Watcher()
  try:
    assert not watcher.reached(1)
    os.kill(os.getpid(), signum)  # handled before the next bytecode
    assert watcher.reached(2) and watcher.signal_name == name
  finally:
    watcher.close()
  assert signal.getsignal(signum) is before


def test_second_ctrl_c_interrupts_at_once():
  watcher = preemption.Watcher()
  try:
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  finally:
    watcher.close()


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("signum,target", [(signal.SIGTERM, 1),
                                           (signal.SIGINT, 0)])
def test_processes_agree_on_the_step(signum, target):
  """A signal to one of two jax.distributed processes stops both at the same
  step, though they run at different speeds (JAX's preemption sync point)."""
  address = f"localhost:{free_port()}"
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="")
  procs = [subprocess.Popen(
      [sys.executable, os.path.join(REPO, "tests", "preemption_worker.py"),
       address, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, env=env) for i in range(2)]
  try:
    for p in procs:
      assert p.stdout.readline().strip() == "ready", p.stderr.read()
    procs[target].send_signal(signum)
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert [p.returncode for p in procs] == [0, 0]
  assert outs[0][0] == outs[1][0] == "stop"
  assert outs[0][1] == outs[1][1]  # the same step on both
