"""How many threads TVM's CPU runtime uses for the artifacts qcompile runs.

Unless ``TVM_NUM_THREADS`` (or ``OMP_NUM_THREADS``) is set, TVM 0.27's thread pool on x86
takes half of ``std::thread::hardware_concurrency()``, assuming two hardware threads per
core. On a machine without SMT (this project's 2-vCPU machines report 2 cores of 1 thread
each) that is half the cores: ``runtime.NumThreads`` is 1 and every parallel kernel runs on
one core (``tests/test_threads.py`` checks the pool size qcompile gives). So
``import qcompile`` sets ``TVM_NUM_THREADS`` to the number of physical cores this process
may run on, read from the kernel's CPU topology, before TVM starts its thread pool (it
starts on the first parallel kernel). A value the user set is left as it is.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = ("TVM_NUM_THREADS", "OMP_NUM_THREADS")


def physical_cores() -> int:
    """Cores (not hardware threads) among the CPUs this process may run on: distinct
    (package, core id) pairs in ``/sys/devices/system/cpu``; the CPU count where the
    topology cannot be read."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def set_default() -> str | None:
    """Set ``TVM_NUM_THREADS`` to :func:`physical_cores` unless the user chose a count;
    returns the value set, or ``None`` when one was already chosen."""
    if any(os.environ.get(k) for k in ENV):
        return None
    os.environ["TVM_NUM_THREADS"] = str(physical_cores())
    return os.environ["TVM_NUM_THREADS"]
