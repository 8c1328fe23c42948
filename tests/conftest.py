"""Test set-up: 8 simulated CPU devices, wandb off, a private cache dir."""

import os
import tempfile

# Must be set before jax is imported anywhere.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
# wandb's service starts slowly on a loaded 2-core machine; the default 30 s
# would turn offline runs into runs without wandb and make tests flaky.
os.environ.setdefault("WANDB_INIT_TIMEOUT", "300")
os.environ.setdefault("GEN_JAX_CACHE",
                      os.path.join(tempfile.gettempdir(), "gen_jax_test_cache"))
# Compilation is about 70% of the suite's CPU time, and many tests (and the
# processes they start) compile the same small programs: JAX's persistent
# cache compiles each once per machine. It stores executables keyed by the
# program, JAX version and flags, so what runs is what would be compiled.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.environ["GEN_JAX_CACHE"], "xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import gc  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None):
  """configs/NAME.py's get_config(arg), as the CLI would load it."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      f"config_{name}", os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def read_checkpoint(workdir, step) -> dict:
  """{'state/<leaf path>': numpy array, 'data': {'process_I-of-N.json': ...},
  'loop': ...} of one checkpoint, read without a target (PRNG keys as their
  key data)."""
  import json

  import numpy as np
  import orbax.checkpoint as ocp
  path = os.path.join(workdir, "checkpoints", str(step))
  with ocp.StandardCheckpointer() as c:
    state = c.restore(os.path.join(path, "state"))
  is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
  out = {f"state/{k}": np.asarray(jax.random.key_data(v) if is_key(v) else v)
         for k, v in ocp.tree.to_flat_dict(state, sep="/").items()}
  with open(os.path.join(path, "loop", "metadata")) as f:
    out["loop"] = json.load(f)
  data = os.path.join(path, "data")  # one position per process
  out["data"] = {name: json.load(open(os.path.join(data, name)))
                 for name in sorted(os.listdir(data))
                 if name.startswith("process_")}
  return out


def assert_bitwise_equal(a: dict, b: dict) -> None:
  """Same keys; arrays of the same dtype, shape and bytes; other values ==."""
  import numpy as np
  assert a.keys() == b.keys()
  for k in a:
    if isinstance(a[k], np.ndarray):
      assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
      assert a[k].tobytes() == b[k].tobytes(), k
    else:
      assert a[k] == b[k], k


@pytest.fixture(scope="session", autouse=True)
def _eight_devices():
  assert jax.device_count() == 8, "tests expect 8 simulated CPU devices"


@pytest.fixture(scope="module", autouse=True)
def _release_executables():
  """After each test module: drop JAX's in-memory executables. Each loaded
  CPU executable maps memory regions of its own (a small GAN run adds
  1,000-2,000 to /proc/self/maps), and a pytest worker that runs a few
  hundred tests passed Linux's limit of 65,530 (vm.max_map_count): the next
  executable it loaded segfaulted. The persistent cache reloads what a later
  module needs."""
  yield
  jax.clear_caches()
  gc.collect()
