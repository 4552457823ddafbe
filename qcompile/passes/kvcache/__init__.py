"""KV-cache storage formats: the passes that replace a decoder's float ``past`` key/value
with a packed cache, behind the same ONNX signature.

* :mod:`.prerope` - ``kv-prerope`` (KVQuant): keys per channel before RoPE, values per token;
  kernels and NumPy references in :mod:`.kvquant`;
* :mod:`.bfp` - ``bfp``: block floating point caches (after ``k-sort``); the formats in
  :mod:`.bfp_format`;
* :mod:`.cache_rewrite` - what both share: replacing each layer's cache concat with
  pack / unpack, float sinks, pre-RoPE storage with RoPE re-applied after unpacking.

Which tensors are the cache is analysis: :mod:`qcompile.analysis.kvcache`.
"""
from qcompile.passes.kvcache.bfp import Bfp
from qcompile.passes.kvcache.prerope import KvPrerope

__all__ = ["Bfp", "KvPrerope"]
