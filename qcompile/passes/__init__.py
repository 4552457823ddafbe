"""Rewrite passes, one module per technique.

Each module defines :class:`qcompile.Pass` subclasses and registers them (and the named
pipeline that uses them) with :func:`qcompile.pipelines.register_pass` /
:func:`qcompile.pipelines.register` when imported. Importing this package registers
every built-in pass.
"""
from .canonicalize import Canonicalize  # noqa: F401

__all__ = ["Canonicalize"]
