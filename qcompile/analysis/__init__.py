"""Graph questions answered once: data movement (:mod:`.moves`); the graph view, residual
regions and KV-cache paths still live in :mod:`qcompile.analysis.residual` and
:mod:`qcompile.analysis.kvcache` and ask this package for movement."""
