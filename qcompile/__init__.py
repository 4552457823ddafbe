"""qcompile: a quantization compiler for transformer models on Apache TVM Relax.

    import qcompile as qc
    model = qc.load("model.onnx")
    pm = qc.PassManager(qc.pipeline("none"))
    art = qc.build(pm.run(model.mod), target="llvm")
"""
__version__ = "0.1.0"

from . import threads as _threads  # noqa: E402

_threads.set_default()  # before TVM's thread pool starts: all physical cores (see qcompile.threads)

from .build import build  # noqa: E402
from .calibration import AbsMaxPerChannel, Calibration, Histogram, MinMax  # noqa: E402
from .canonicalize import canonicalize  # noqa: E402
from .errors import PassError, QCompileError, UnsupportedOpError  # noqa: E402
from .loader import load  # noqa: E402
from .passmanager import Pass, PassContext, PassManager  # noqa: E402
from .pipelines import pipeline, register, register_pass  # noqa: E402

__all__ = ["build", "Calibration", "MinMax", "AbsMaxPerChannel", "Histogram", "canonicalize", "QCompileError",
           "PassError", "UnsupportedOpError", "load", "Pass", "PassContext", "PassManager", "pipeline",
           "register", "register_pass"]
