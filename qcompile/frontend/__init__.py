"""The import layer: ONNX graph preparation and the converters TVM 0.27's ONNX frontend
gets wrong on real exports (see :mod:`qcompile.frontend.onnx_converters`)."""
