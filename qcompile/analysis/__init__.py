"""Graph questions answered once, for every pass; analysis only (nothing here rewrites).

* :mod:`.graph` - the :class:`~.graph.Graph` view of ``main`` (definitions, users, a
  networkx DiGraph, outputs, composites), :func:`~.graph.linear_at` ("is this a linear
  layer, with which weight and bias"), static shapes with stand-ins for symbolic dims;
* :mod:`.moves` - the one table of data-movement ops and how each maps an axis;
* :mod:`.patterns` - ``relax.dpl`` pattern helpers and predicates on constants;
* :mod:`.residual` - residual-stream regions, their writers and readers, V/O head columns;
* :mod:`.kvcache` - KV-cache paths from ``past`` to the attention, pre-RoPE keys;
* :mod:`.flops` - FLOPs per binding.
"""
