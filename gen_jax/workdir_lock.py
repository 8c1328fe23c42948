"""One run per workdir: `with workdir_lock.hold(workdir): ...`.

Two processes writing one workdir interleave metrics.jsonl and break each
other's checkpoint saves, so a run owns its workdir while it trains:

- **flock** (default): an exclusive, non-blocking `fcntl.flock` on
  `WORKDIR/.lock`, which holds the owner's pid, host, start time and command.
  The kernel drops the lock when the process dies, even by SIGKILL, so a new
  run can start at once.
- **lease**, for filesystems whose locks fail (flock raises ENOLCK,
  EOPNOTSUPP...) or are local to one host (FUSE mounts such as Cloud Storage
  FUSE; NFS mounted with `local_lock=flock|all`): `WORKDIR/.lease` holds the
  same record plus a time that a background thread renews every `expiry / 4`
  seconds. A lease not renewed for `expiry` seconds (default 60,
  `$GEN_JAX_LEASE_SECONDS`), or held by a process of this machine that is
  gone, is taken over with a warning naming the old holder. A flock is taken
  too where it works, so runs on one host exclude each other at once.

`$GEN_JAX_WORKDIR_LOCK=flock|lease|auto` (default auto: by filesystem) picks
the mode. With several processes (jax.distributed) the run owns the workdir:
process 0 takes the lock, creates `.lock.run-TOKEN` and broadcasts TOKEN;
every other process checks that it sees that file (so the directory is
shared) and goes on. Another run is refused by its own process 0.
"""

import contextlib
import errno
import fcntl
import glob
import json
import os
import secrets
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator

from gen_jax.errors import UserError

LOCK_FILE = ".lock"
LEASE_FILE = ".lease"
MODES = ("auto", "flock", "lease")
DEFAULT_EXPIRY = 60.0
# flock errors meaning "this filesystem has no working locks".
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL,
             errno.EBADF)


class WorkdirBusy(UserError):
  """Another run owns the workdir (exit code 2)."""


def _boot_id() -> str:
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      return f.read().strip()
  except OSError:
    return ""


def _record(mode: str, run: str, expiry: float) -> dict:
  now = time.time()
  command = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
  return {"pid": os.getpid(), "host": socket.gethostname(), "boot": _boot_id(),
          "started": now, "renewed": now, "expiry": expiry, "mode": mode,
          "run": run, "command": " ".join(shlex.quote(a) for a in command)}


def _read(path: str, tries: int = 1) -> dict | None:
  """The record in `path`; None if missing; {} if empty or unparsable
  (retried `tries` times 0.1 s apart: its holder may be writing it)."""
  for i in range(tries):
    try:
      with open(path) as f:
        record = json.loads(f.read())
      if isinstance(record, dict):
        return record
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      pass
    if i + 1 < tries:
      time.sleep(0.1)
  return {}


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:  # a zombie (killed, not yet reaped) is gone too
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except (OSError, IndexError):
    return True


def _stale(record: dict, expiry: float) -> str | None:
  """Why a lease `record` no longer holds, or None if it does."""
  if not record:
    return "its lease file is unreadable"
  same_machine = (record.get("host") == socket.gethostname()
                  and record.get("boot", "") == _boot_id())
  if same_machine and not _alive(int(record.get("pid", 0))):
    return "its process is gone"
  age = time.time() - float(record.get("renewed", 0))
  if age > float(record.get("expiry", expiry)):
    return f"not renewed for {age:.0f} s"
  return None


def describe(record: dict | None) -> str:
  """'pid 12 on host h, started 2025-01-02 03:04:05 (5 min ago): CMD'."""
  if not record:
    return "an unknown holder (its record is empty: it may be starting)"
  started = float(record.get("started", 0))
  ago = time.time() - started
  ago = f"{ago:.0f} s" if ago < 120 else f"{ago / 60:.0f} min"
  when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
  command = " ".join(str(record.get("command", "?")).split())  # one line
  return (f"pid {record.get('pid')} on host {record.get('host')}, started "
          f"{when} ({ago} ago): {command}")


def _busy(workdir: str, record: dict | None) -> WorkdirBusy:
  how = ""
  if record and record.get("mode") == "lease":
    how = (f" (lease renewed {time.time() - record.get('renewed', 0):.0f} s "
           f"ago; taken over after {record.get('expiry', 0):.0f} s without "
           "renewal)")
  pid = record.get("pid") if record else None
  stop = f"stop it (kill {pid} on {record.get('host')})" if pid else "stop it"
  return WorkdirBusy(
      f"workdir {workdir!r} is in use by another run: {describe(record)}"
      f"{how}. Wait for it to finish, or {stop} and run this command again "
      "to resume; or use another --workdir")


def _mount(path: str) -> tuple[str, str]:
  """(filesystem type, super options) of the mount holding `path`."""
  path = os.path.realpath(path)
  best, found = "", ("", "")
  try:
    with open("/proc/self/mountinfo") as f:
      for line in f:
        left, _, right = line.partition(" - ")
        point = left.split()[4].replace("\\040", " ")
        fields = right.split()
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best) and len(fields) >= 3:
          best, found = point, (fields[0], fields[2])
  except (OSError, IndexError):
    pass
  return found


def flock_is_local_only(path: str) -> bool:
  """Filesystems where flock succeeds but does not exclude other hosts: FUSE
  (the kernel keeps FUSE flocks locally unless the daemon handles them, as
  Cloud Storage FUSE does not) and NFS with `local_lock=flock|all`."""
  fstype, options = _mount(path)
  if fstype.startswith("fuse"):
    return True
  return fstype.startswith("nfs") and any(
      o in ("local_lock=flock", "local_lock=all") for o in options.split(","))


def _mode(workdir: str, mode: str | None) -> str:
  mode = mode or os.environ.get("GEN_JAX_WORKDIR_LOCK", "auto")
  if mode not in MODES:
    raise UserError(f"GEN_JAX_WORKDIR_LOCK={mode!r} is not one of: "
                    f"{', '.join(MODES)}")
  if mode == "auto":
    return "lease" if flock_is_local_only(workdir) else "flock"
  return mode


def _write(path: str, record: dict) -> None:
  """Writes `record` to `path` atomically (tmp file, then rename)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(json.dumps(record))
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class Lock:
  """A held workdir: `release()` (or leaving `hold`) gives it up."""

  def __init__(self, workdir: str, mode: str | None = None,
               expiry: float | None = None):
    self.workdir = workdir
    self.mode = _mode(workdir, mode)
    self.expiry = float(expiry or os.environ.get("GEN_JAX_LEASE_SECONDS",
                                                 DEFAULT_EXPIRY))
    # 31 bits: broadcast as an int32 with several processes.
    self.record = _record(self.mode, f"{secrets.randbits(31):08x}",
                          self.expiry)
    self.run = self.record["run"]
    self._fd: int | None = None
    self._locked = False
    self._stop = threading.Event()
    self._beat: threading.Thread | None = None
    self._lease = os.path.join(workdir, LEASE_FILE)
    try:
      self._acquire()
    except BaseException:
      self.release()
      raise

  def _acquire(self) -> None:
    path = os.path.join(self.workdir, LOCK_FILE)
    try:
      self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
      raise UserError(f"workdir {self.workdir!r} is not writable "
                      f"({e.strerror or e})") from e
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read(self._lease) if self.mode == "lease" else None
      raise _busy(self.workdir, holder or _read(path, tries=20)) from None
    except OSError as e:
      if e.errno not in _NO_LOCKS:
        raise
      os.close(self._fd)
      self._fd = None
      if self.mode == "flock":
        print(f"warning: workdir {self.workdir!r} has no working file locks "
              f"({e.strerror}); using a lease file instead", file=sys.stderr)
        self.mode = self.record["mode"] = "lease"
    if self._fd is not None:  # the holder's record, for a refused process
      self._locked = True
      os.ftruncate(self._fd, 0)
      os.pwrite(self._fd, json.dumps(self.record).encode(), 0)
      os.fsync(self._fd)
    self._take_lease()

  def _take_lease(self) -> None:
    """Takes the lease unless another run's is live, then waits a little
    and reads it back: of two runs starting together, the one whose write
    landed last wins and the other is refused."""
    current = _read(self._lease, tries=5)
    if current is None and self.mode == "flock":
      return
    if current is not None and current.get("run") != self.run:
      why = _stale(current, self.expiry)
      if why is None:
        raise _busy(self.workdir, current)
      if self.mode == "flock":
        return  # a dead lease-mode run's leftover: flock protects this run
      print(f"warning: taking over workdir {self.workdir!r} from "
            f"{describe(current)} ({why})", file=sys.stderr)
    if self.mode == "flock":
      return
    _write(self._lease, self.record)
    time.sleep(min(1.0, self.expiry / 20))
    current = _read(self._lease, tries=5)
    if not current or current.get("run") != self.run:
      raise _busy(self.workdir, current)
    self._beat = threading.Thread(target=self._renew, daemon=True,
                                  name="workdir-lease")
    self._beat.start()

  def _renew(self) -> None:
    warned = False
    while not self._stop.wait(self.expiry / 4):
      try:
        current = _read(self._lease, tries=5)
        if current and current.get("run") != self.run:
          # Another run took over (this one stalled past the expiry): stop
          # before writing anything more into its workdir.
          print(f"error: workdir {self.workdir!r} was taken over by "
                f"{describe(current)}; stopping this run", file=sys.stderr,
                flush=True)
          os._exit(2)
        self.record["renewed"] = time.time()
        _write(self._lease, self.record)
      except OSError as e:
        if not warned:
          print(f"warning: cannot renew the lease on workdir "
                f"{self.workdir!r} ({e}); retrying", file=sys.stderr)
          warned = True

  def release(self) -> None:
    self._stop.set()
    if self._beat is not None:
      self._beat.join()
      self._beat = None
      with contextlib.suppress(OSError):
        if (_read(self._lease) or {}).get("run") == self.run:
          os.remove(self._lease)
    if self._fd is not None:
      if self._locked:  # an empty .lock: nobody holds the workdir
        with contextlib.suppress(OSError):
          os.ftruncate(self._fd, 0)
      os.close(self._fd)  # drops the flock
      self._fd = None


def holder(workdir: str) -> dict | None:
  """The record of the run that owns `workdir` ({} if unreadable), or None
  if it is free. Takes nothing (a flock is tried and dropped at once)."""
  path = os.path.join(workdir, LOCK_FILE)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
  except OSError:
    fd = None
  if fd is not None:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      return _read(path, tries=20)
    except OSError:
      pass  # no working locks here: the lease tells
    finally:
      os.close(fd)
  lease = _read(os.path.join(workdir, LEASE_FILE))
  if lease is not None and _stale(lease, DEFAULT_EXPIRY) is None:
    return lease
  return None


def _run_marker(workdir: str, run: str) -> str:
  """An empty file that process 0 creates while it holds the lock. A new name
  per run: a network filesystem's attribute cache cannot show an old one."""
  return os.path.join(workdir, f"{LOCK_FILE}.run-{run}")


def _sees(path: str, timeout: float = 10.0) -> bool:
  """Whether `path` exists within `timeout` seconds (another host's write may
  show late)."""
  deadline = time.time() + timeout
  while not os.path.exists(path):
    if time.time() > deadline:
      return False
    time.sleep(0.5)
  return True


@contextlib.contextmanager
def hold(workdir: str, mode: str | None = None,
         expiry: float | None = None) -> Iterator[Lock | None]:
  """Owns `workdir` for the duration (creating it if needed), or raises
  `WorkdirBusy` naming the run that owns it. With several processes, process
  0 holds the lock (yielded there; None elsewhere) for the whole run."""
  import jax

  from gen_jax import workdir as workdir_lib
  if jax.process_count() == 1:
    workdir_lib.create(workdir)
    lock = Lock(workdir, mode, expiry)
    try:
      yield lock
    finally:
      lock.release()
    return
  import numpy as np
  from jax.experimental import multihost_utils
  lock, error = None, None
  if jax.process_index() == 0:  # no process may raise before the broadcast
    try:
      workdir_lib.create(workdir)
      lock = Lock(workdir, mode, expiry)
      for old in glob.glob(_run_marker(workdir, "*")):  # of killed runs
        os.remove(old)
      open(_run_marker(workdir, lock.run), "w").close()
    except Exception as e:  # noqa: BLE001 -- raised after the broadcast
      error = e
      if lock is not None:
        lock.release()
        lock = None
  # [status (0 held, 1 busy, 2 another error), the run token]
  status = 0 if lock else 1 if isinstance(error, WorkdirBusy) else 2
  status, token = (int(v) for v in multihost_utils.broadcast_one_to_all(
      np.array([status, int(lock.run, 16) if lock else 0], np.int32)))
  try:
    if error is not None:
      raise error
    if status == 1:
      raise _busy(workdir, holder(workdir))
    if status == 2:
      raise UserError(f"workdir {workdir!r} cannot be used (process 0 says "
                      "why)")
    sees = lock is not None or _sees(_run_marker(workdir, f"{token:08x}"))
    seen = np.asarray(multihost_utils.process_allgather(np.int32(sees)))
    blind = [i for i, s in enumerate(seen) if not s]
    if blind:
      raise UserError(
          f"workdir {workdir!r} is not shared: process(es) "
          f"{', '.join(map(str, blind))} do not see the lock that process 0 "
          "holds there; give a directory on a filesystem that every host "
          "mounts (NFS, Cloud Storage FUSE)")
    yield lock
  finally:
    if lock is not None:
      with contextlib.suppress(OSError):
        os.remove(_run_marker(workdir, lock.run))
      lock.release()
