"""One run per workdir (gen_jax/workdir_lock.py): a second run is refused with
one line and writes nothing; a run killed with SIGKILL leaves no stale lock;
the lease fallback for filesystems without working locks; the sweep executor
waits for a trial whose workdir is owned. The processes of one multi-process
run sharing the workdir while another run is refused:
tests/test_multihost.py::test_two_processes_train_like_one_and_resume."""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, load_config
from gen_jax import train, workdir_lock
from gen_jax.errors import UserError
from gen_jax.workdir_lock import WorkdirBusy

CLI = [sys.executable, "-m", "gen_jax.main",
       "--config=configs/gan_2d.py:ring,small"]


def env(**extra) -> dict:
  return dict(os.environ, PYTHONPATH=REPO, **extra)


def logged_steps(workdir) -> list[int]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f if "steps_per_sec" in line]


def checkpoints(workdir) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(s) for s in os.listdir(d) if s.isdigit()) \
      if os.path.isdir(d) else []


def tree(path) -> dict:
  """{relative path: (size, mtime)} of every file under `path`."""
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      p = os.path.join(root, name)
      out[os.path.relpath(p, path)] = (os.path.getsize(p),
                                       os.stat(p).st_mtime_ns)
  return out


def small(num_steps: int, **train_fields):
  config = load_config("gan_2d", "ring,small")
  config.train.num_steps = num_steps
  for k, v in train_fields.items():
    config.train[k] = v
  return config


def test_two_runs_started_together_one_trains_one_is_refused(tmp_path):
  """The issue's scenario: the same command started twice at once."""
  workdir = str(tmp_path / "run")
  command = CLI + [f"--workdir={workdir}", "--config.train.num_steps=120",
                   "--config.train.checkpoint_every=20",
                   "--config.train.log_every=10",
                   "--config.train.eval_every=120"]
  procs = [subprocess.Popen(command, cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for _ in range(2)]
  results = [p.communicate(timeout=600) for p in procs]
  codes = [p.returncode for p in procs]
  assert sorted(codes) == [0, 2], [err[-2000:] for _, err in results]
  winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
  lines = results[loser][1].strip().splitlines()
  assert len(lines) == 1, results[loser][1]
  assert lines[0].startswith(
      f"error: workdir '{workdir}' is in use by another run: pid "
      f"{procs[winner].pid} on host {socket.gethostname()}, started ")
  assert "gen_jax.main --config=configs/gan_2d.py:ring,small" in lines[0]
  assert "Wait for it to finish, or stop it" in lines[0]
  assert logged_steps(workdir) == list(range(10, 121, 10))  # each step once
  assert json.load(open(os.path.join(workdir, "summary.json")))["step"] == 120
  assert open(os.path.join(workdir, ".lock")).read() == ""  # released


def test_a_refused_run_writes_nothing(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(small(4), workdir)
  with workdir_lock.hold(workdir) as lock:  # this process owns it now
    assert lock.mode == "flock"
    before = tree(workdir)
    with pytest.raises(WorkdirBusy, match=f"is in use by another run: pid "
                       f"{os.getpid()} on host"):
      train.train_and_evaluate(small(8), workdir)
    assert tree(workdir) == before
    assert workdir_lock.holder(workdir)["pid"] == os.getpid()
  assert workdir_lock.holder(workdir) is None  # free again


# The lease's version of this (a dead pid of this host is taken over at
# once) is test_a_lease_of_a_dead_process_on_this_host_is_taken_at_once.
@pytest.mark.parametrize("mode", ["flock"])
def test_a_run_killed_with_sigkill_leaves_no_stale_lock(tmp_path, mode,
                                                        monkeypatch, capsys):
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen(
      CLI + [f"--workdir={workdir}", "--config.train.num_steps=100000",
             "--config.train.checkpoint_every=10",
             "--config.train.log_every=10",
             "--config.train.eval_every=100000"],
      cwd=REPO, env=env(GEN_JAX_WORKDIR_LOCK=mode),
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not checkpoints(workdir) and time.time() < deadline:
    time.sleep(0.05)
  proc.kill()
  proc.wait()
  last = checkpoints(workdir)[-1]
  left = os.path.join(workdir, ".lock" if mode == "flock" else ".lease")
  assert json.load(open(left))["pid"] == proc.pid  # its record stays behind
  monkeypatch.setenv("GEN_JAX_WORKDIR_LOCK", mode)
  train.train_and_evaluate(small(last + 10, checkpoint_every=10, log_every=10,
                                 eval_every=100000), workdir)
  err = capsys.readouterr().err
  assert f"resuming {workdir} from step {last}" in err
  if mode == "lease":  # the same host, a pid that is gone: no wait
    assert (f"warning: taking over workdir '{workdir}' from pid {proc.pid} on "
            f"host {socket.gethostname()}") in err
    assert "(its process is gone)" in err
  assert logged_steps(workdir) == list(range(10, last + 11, 10))


# -- the lease fallback -------------------------------------------------------

def write_lease(workdir, **fields):
  os.makedirs(workdir, exist_ok=True)
  record = {"pid": 4242, "host": "elsewhere", "boot": "b", "started": 0.0,
            "renewed": time.time(), "expiry": 60.0, "mode": "lease",
            "run": "0000beef", "command": "python -m gen_jax.main ..."}
  record.update(fields)
  with open(os.path.join(workdir, ".lease"), "w") as f:
    json.dump(record, f)


def read_lease(workdir):
  return json.load(open(os.path.join(workdir, ".lease")))


def test_a_live_lease_is_refused(tmp_path):
  write_lease(str(tmp_path))
  with pytest.raises(WorkdirBusy, match=r"pid 4242 on host elsewhere, "
                     r"started .*: python -m gen_jax.main \.\.\. \(lease "
                     r"renewed 0 s ago; taken over after 60 s"):
    with workdir_lock.hold(str(tmp_path), mode="lease"):
      pass
  assert read_lease(tmp_path)["run"] == "0000beef"  # untouched
  assert workdir_lock.holder(str(tmp_path))["host"] == "elsewhere"
  with pytest.raises(WorkdirBusy):  # flock mode respects a live lease too
    with workdir_lock.hold(str(tmp_path), mode="flock"):
      pass


def test_an_expired_lease_is_taken_over_and_renewed(tmp_path, capsys):
  write_lease(str(tmp_path), renewed=time.time() - 100)
  assert workdir_lock.holder(str(tmp_path)) is None
  with workdir_lock.hold(str(tmp_path), mode="lease", expiry=0.4) as lock:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"warning: taking over workdir '{tmp_path}' from pid 4242 on host "
        "elsewhere")
    assert err[0].endswith("(not renewed for 100 s)")
    first = read_lease(tmp_path)
    assert first["run"] == lock.run and first["pid"] == os.getpid()
    time.sleep(0.5)  # the heartbeat renews every expiry / 4
    assert read_lease(tmp_path)["renewed"] > first["renewed"]
    with pytest.raises(WorkdirBusy):  # a live lease of this host
      with workdir_lock.hold(str(tmp_path), mode="lease"):
        pass
  assert not os.path.exists(tmp_path / ".lease")  # released


def test_a_lease_of_a_dead_process_on_this_host_is_taken_at_once(tmp_path,
                                                                capsys):
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()
  write_lease(str(tmp_path), pid=gone.pid, host=socket.gethostname(),
              boot=workdir_lock._boot_id())
  with workdir_lock.hold(str(tmp_path), mode="lease"):
    pass
  assert "(its process is gone)" in capsys.readouterr().err


def test_without_working_locks_a_lease_is_used(tmp_path, monkeypatch, capsys):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")
  monkeypatch.setattr(workdir_lock.fcntl, "flock", no_locks)
  with workdir_lock.hold(str(tmp_path)) as lock:
    assert lock.mode == "lease"
    assert read_lease(tmp_path)["run"] == lock.run
  assert "has no working file locks (No locks available); using a lease " \
      "file instead" in capsys.readouterr().err


@pytest.mark.parametrize("fstype,options,lease", [
    ("ext4", "rw", False),
    ("fuse.gcsfuse", "rw,user_id=0", True),
    ("nfs4", "rw,vers=4.2,local_lock=none", False),
    ("nfs", "rw,vers=3,local_lock=all", True),
])
def test_auto_mode_picks_a_lease_where_flock_is_local_only(
    tmp_path, monkeypatch, fstype, options, lease):
  monkeypatch.setattr(workdir_lock, "_mount", lambda path: (fstype, options))
  assert workdir_lock.flock_is_local_only(str(tmp_path)) == lease
  with workdir_lock.hold(str(tmp_path), expiry=5) as lock:
    assert lock.mode == ("lease" if lease else "flock")


def test_mount_of_a_path():
  fstype, _ = workdir_lock._mount("/proc/self")
  assert fstype == "proc"


def test_a_bad_mode_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setenv("GEN_JAX_WORKDIR_LOCK", "none")
  with pytest.raises(UserError, match="GEN_JAX_WORKDIR_LOCK='none' is not "
                     "one of: auto, flock, lease"):
    with workdir_lock.hold(str(tmp_path)):
      pass


# -- the sweep executor -------------------------------------------------------

def test_sweep_waits_for_a_trial_whose_workdir_is_owned(tmp_path):
  """As after an executor was killed while its trial lived on."""
  from test_sweep import _tiny
  path = _tiny(tmp_path, parameters={"config.seed": {"values": [3]}})
  out = tmp_path / "out"
  workdir = out / "runs" / "tiny-000"
  holder = subprocess.Popen(  # holds the workdir until told to let go
      [sys.executable, "-c",
       "import sys, time\n"
       "from gen_jax import workdir_lock\n"
       "with workdir_lock.hold(sys.argv[1]):\n"
       "  print('held', flush=True)\n"
       "  sys.stdin.readline()\n"
       "  released = time.time()\n"
       "open(sys.argv[2], 'w').write(repr(released))\n",
       str(workdir), str(tmp_path / "released")],
      cwd=REPO, env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
      text=True)
  executor = None
  try:
    assert holder.stdout.readline() == "held\n"
    executor = subprocess.Popen(
        [sys.executable, "-m", "gen_jax.sweep", path, f"--workdir={out}"],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    waiting = next(line for line in executor.stderr
                   if "waiting" in line or "error" in line)
    assert (f"tiny-000: its workdir is in use by pid {holder.pid} on host "
            in waiting), waiting
    assert waiting.strip().endswith("; waiting for it to end")
    time.sleep(3)  # the executor keeps waiting
    assert not (workdir / "log.txt").exists()
    holder.communicate("go\n", timeout=60)
    _, err = executor.communicate(timeout=600)
  finally:
    for p in (holder, executor):
      if p is not None and p.poll() is None:
        p.kill()
  assert executor.returncode == 0, err
  released = float(open(tmp_path / "released").read())
  assert os.stat(workdir / "config.json").st_mtime > released
  assert open(workdir / "log.txt").read().count("$ ") == 1
  assert json.load(open(workdir / "summary.json"))["step"] == 4
