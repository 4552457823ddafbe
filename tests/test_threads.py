"""qcompile runs artifacts on every physical core (TVM alone would take half of them on a
machine without SMT) and leaves a thread count the user chose alone."""
import os
import subprocess
import sys

from qcompile import threads

PROBE = "import qcompile, tvm; print(tvm.get_global_func('runtime.NumThreads')())"


def _pool_size(env_extra: dict) -> int:
    env = {k: v for k, v in os.environ.items() if k not in threads.ENV} | env_extra
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_physical_cores_is_within_the_cpus_we_may_use():
    n = threads.physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_thread_pool_uses_every_physical_core_by_default():
    assert _pool_size({}) == threads.physical_cores()


def test_a_thread_count_the_user_set_is_kept():
    assert _pool_size({"TVM_NUM_THREADS": "1"}) == 1
