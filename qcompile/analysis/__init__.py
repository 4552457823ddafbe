"""Graph questions answered once: data movement (:mod:`.moves`); the graph view, residual
regions and KV-cache paths still live in :mod:`qcompile.residual` and
:mod:`qcompile.kvcache` and ask this package for movement."""
