"""Rewrite passes, one package (or module) per technique.

Each technique keeps its pass, its rewrite and its kernels with their NumPy references side
by side: :mod:`.canonicalize`, :mod:`.rotate` (QuaRot), :mod:`.qdq_sim`, :mod:`.ksort`
(K-sort), :mod:`.kvcache` (KVQuant's pre-RoPE cache and BFP caches), :mod:`.int_only`
(I-ViT). The graph questions they ask are answered in :mod:`qcompile.analysis`; which
passes a named pipeline runs, and in what order, is the table in :mod:`qcompile.pipelines`.
A pass module imports neither the pipelines nor the backends.
"""
