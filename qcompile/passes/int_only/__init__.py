"""``int-only`` (I-ViT): integer-only inference of encoders and ViTs.

* :mod:`.lower` - the passes: ``int-prepare`` (float-level preparation) and ``int-only``
  (the lowering rules, one per Relax op, and the overflow analysis);
* :mod:`.intops` - the integer kernels (Shiftmax, ShiftGELU, integer LayerNorm, dyadic
  requantization, ...) as TE, each beside its NumPy reference;
* :mod:`.intref` - a NumPy interpreter of the integer graph, the bit-exact reference the
  llvm, C and CUDA builds are tested against.
"""
from qcompile.passes.int_only.lower import ISLAND_HINT, IntOnly, IntPrepare, count_ops, patchify

__all__ = ["ISLAND_HINT", "IntOnly", "IntPrepare", "count_ops", "patchify"]
