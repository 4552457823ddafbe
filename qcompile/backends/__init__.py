"""Targets: ``llvm`` (CPU, runs here), ``cuda`` (NVIDIA GPU; builds without one) and
``int-accel`` (TVM's C target, integer-only, checked by :mod:`.verify`)."""
from qcompile.backends import cuda, int_accel, llvm

TARGETS = {"llvm": llvm, "cuda": cuda, "int-accel": int_accel}
