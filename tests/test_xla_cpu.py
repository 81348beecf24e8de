"""The XLA CPU flags flax_sentiment sets by default."""

import os
import subprocess
import sys

import pytest

from flax_sentiment.runtime import xla_cpu
from tests.conftest import REPO


def test_avx512_cpus_get_512_bit_vectors():
  assert xla_cpu.with_defaults("", {"avx2", "avx512f"}) == (
      "--xla_cpu_prefer_vector_width=512")
  assert xla_cpu.with_defaults("--xla_force_host_platform_device_count=8",
                               {"avx512f"}) == (
      "--xla_force_host_platform_device_count=8 "
      "--xla_cpu_prefer_vector_width=512")


def test_other_cpus_and_the_users_own_value_are_left_alone():
  assert xla_cpu.with_defaults("", {"avx2", "fma"}) == ""
  mine = "--xla_cpu_prefer_vector_width=256"
  assert xla_cpu.with_defaults(mine, {"avx512f"}) == mine


def test_cpu_flags_reads_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
  assert xla_cpu.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512f"}
  assert xla_cpu.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.skipif("avx512f" not in xla_cpu.cpu_flags(),
                    reason="this CPU has no AVX-512")
def test_importing_the_package_sets_the_flag_before_jax_starts():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  code = ("import os, flax_sentiment, jax, jax.numpy as jnp; "
          "jnp.ones(2).block_until_ready(); print(os.environ['XLA_FLAGS'])")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                       capture_output=True, text=True, check=True).stdout
  assert out.strip() == "--xla_cpu_prefer_vector_width=512"
