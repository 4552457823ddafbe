"""What every backend shares: the Artifact and the stage split used by the verifier."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tvm
from tvm import relax


@dataclasses.dataclass
class Artifact:
    """A compiled model. ``sources`` are extra files written next to ``model.so``
    (CUDA or C source); ``runnable`` says whether this machine can execute it."""

    target: str
    tvm_target: object
    executable: object  # relax.VMExecutable
    sources: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    runnable: bool = True
    device: str = "cpu"
    io: dict | None = None  # integer I/O: the host quantizes inputs and dequantizes outputs
    _vm: object = None

    def export(self, out_dir: str | Path) -> list[str]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.executable.export_library(str(out_dir / "model.so"))
        files = ["model.so"]
        for name, text in sorted(self.sources.items()):
            (out_dir / name).write_text(text)
            files.append(name)
        return files

    def vm(self):
        if not self.runnable:
            raise RuntimeError(f"a {self.target} artifact cannot run on this machine")
        if self._vm is None:
            self._vm = relax.VirtualMachine(self.executable, tvm.device(self.device, 0))
        return self._vm

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Float in, float out; an integer-I/O artifact is quantized and dequantized here."""
        if self.io is None:
            return self.run_raw(*inputs)
        return host_dequantize(self.io, self.run_raw(*host_quantize(self.io, inputs)))

    def run_raw(self, *inputs: np.ndarray) -> list[np.ndarray]:
        dev = tvm.device(self.device, 0)
        out = self.vm()["main"](*[tvm.runtime.tensor(np.ascontiguousarray(x), device=dev) for x in inputs])
        return flatten_outputs(out)


def host_quantize(io: dict, inputs) -> list[np.ndarray]:
    from ..intops import quantize_ref

    specs = list(io["inputs"].values())
    out, k = [], 0
    for x in inputs:
        if np.issubdtype(np.asarray(x).dtype, np.floating) and k < len(specs):
            out.append(quantize_ref(np.asarray(x), specs[k]["scale"], specs[k]["dtype"]))
            k += 1
        else:
            out.append(x)
    return out


def host_dequantize(io: dict, outputs) -> list[np.ndarray]:
    return [o.astype(np.float32) * np.float32(spec["scale"]) for o, spec in zip(outputs, io["outputs"])]


def flatten_outputs(out) -> list[np.ndarray]:
    if isinstance(out, tvm.runtime.Tensor):
        return [out.numpy()]
    res = []
    for o in out:
        res.extend(flatten_outputs(o))
    return res


def legalize_stage(mod, target, extra_tir_passes=()):
    """Relax with fused PrimFuncs (``call_tir`` still visible, before VM lowering):
    the level at which the verifier maps kernels back to bindings."""
    T = relax.transform
    passes = [T.LegalizeOps(), T.AnnotateTIROpPattern(), T.FoldConstant(), T.FuseOps(), T.FuseTIR(),
              *extra_tir_passes]
    with target:
        return tvm.transform.Sequential(passes)(mod)
