"""qcompile: a quantization compiler for transformer models on Apache TVM Relax.

    import qcompile as qc
    model = qc.load("model.onnx")
    pm = qc.PassManager(qc.pipeline("none"))
    art = qc.build(pm.run(model.mod), target="llvm")
"""
__version__ = "0.1.0"

import importlib  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

from qcompile import threads as _threads  # noqa: E402

_threads.set_default()  # before TVM's thread pool starts: all physical cores (see qcompile.threads)

# the public API, imported on first use (PEP 562): `qcompile --help` and `--version` answer
# without importing TVM (seconds); `import qcompile as qc; qc.load(...)` is unchanged
_LAZY = {"Calibration": "calibration", "MinMax": "collectors",
         "AbsMaxPerChannel": "collectors", "Histogram": "collectors",
         "PassError": "errors", "QCompileError": "errors", "UnsupportedOpError": "errors", "load": "loader",
         "Multiple": "loader",
         "Pass": "passmanager", "PassContext": "passmanager", "PassManager": "passmanager",
         "pipeline": "pipelines", "register": "pipelines", "register_pass": "pipelines",
         "canonicalize": "passes.canonicalize.rules"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qcompile' has no attribute {name!r}")


def _api_function(name: str) -> property:
    """The function ``name`` of submodule ``name``; setting it (the import system binding the
    submodule to the package) is ignored."""
    get = property(lambda self: getattr(importlib.import_module(f".{name}", __name__), name))
    return get.setter(lambda self, _submodule: None)


class _Package(types.ModuleType):
    """``build`` is a submodule and the API's function of the same name: the function wins,
    whenever the submodule is first imported (``from qcompile.build import ..`` reads
    ``sys.modules``)."""

    build = _api_function("build")


sys.modules[__name__].__class__ = _Package


__all__ = ["build", "Calibration", "MinMax", "AbsMaxPerChannel", "Histogram", "canonicalize", "QCompileError",
           "PassError", "UnsupportedOpError", "load", "Pass", "PassContext", "PassManager", "pipeline",
           "register", "register_pass"]
