"""Rewrite passes, one module per technique.

A technique module defines :class:`qcompile.Pass` subclasses and registers them, and the
named pipeline that uses them, with :func:`qcompile.pipelines.register_pass` and
:func:`qcompile.pipelines.register` at import time. :data:`BUILTIN` lists those modules;
:mod:`qcompile.pipelines` imports them once it is itself fully defined, so a technique
module may import from it freely.
"""
import importlib

BUILTIN: list[str] = ["rotate", "qdq_sim", "ksort", "bfp", "kv_prerope", "int_only"]


def load_builtin() -> None:
    for name in BUILTIN:
        importlib.import_module(f"{__name__}.{name}")
