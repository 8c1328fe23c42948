"""Test set-up: 8 simulated CPU devices, wandb off, a private cache dir."""

import os
import tempfile

# Must be set before jax is imported anywhere.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("GEN_JAX_CACHE",
                      os.path.join(tempfile.gettempdir(), "gen_jax_test_cache"))

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


@pytest.fixture(scope="session", autouse=True)
def _eight_devices():
  assert jax.device_count() == 8, "tests expect 8 simulated CPU devices"
