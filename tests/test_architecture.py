"""The package's layering, checked on the source (every import, including those inside
functions): no import cycle, no module importing a layer above its own, and no technique
package importing another (they share code through :mod:`qcompile.analysis`)."""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent / "qcompile"

#: lowest first; a module may import its own layer or lower ones (longest prefix decides)
LAYERS = [
    ["qcompile.errors", "qcompile.ir", "qcompile.rewrite", "qcompile.progress", "qcompile.threads",
     "qcompile.samples", "qcompile.collectors", "qcompile.lm", "qcompile.report", "qcompile.weights",
     "qcompile.interrupts", "qcompile.hadamard"],
    ["qcompile.analysis", "qcompile.frontend"],
    ["qcompile.passmanager"],
    ["qcompile.passes"],
    ["qcompile.pipelines", "qcompile.backends"],
    ["qcompile.build", "qcompile.loader"],
    ["qcompile.calibration", "qcompile.evaluate"],
    ["qcompile.driver"],
    ["qcompile.cli", "qcompile.__main__", "qcompile.assets", "qcompile.models", "qcompile"],
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    for mod, path in modules.items():
        g.add_node(mod)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # "from pkg import module" imports the module
                    full = f"{target}.{alias.name}"
                    g.add_edge(mod, full if full in modules else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    g.add_edge(mod, alias.name)
    return g.subgraph([n for n in g if n.split(".")[0] == "qcompile"]).copy()


def layer(mod: str) -> int:
    best = max(((len(p), i) for i, ps in enumerate(LAYERS) for p in ps if mod == p or mod.startswith(p + ".")),
               default=None)
    assert best is not None, f"{mod} is in no layer: add it to LAYERS"
    return best[1]


def _technique(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "passes" else None


def test_no_import_cycle():
    g = import_graph()
    assert len(g) > 60
    cycles = list(nx.simple_cycles(g))
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles[:5])


def test_no_module_imports_upward():
    g = import_graph()
    upward = [f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in g.edges if a != b and layer(b) > layer(a)]
    assert not upward, "\n".join(upward)


def test_techniques_do_not_import_each_other():
    g = import_graph()
    cross = [f"{a} -> {b}" for a, b in g.edges
             if _technique(a) and _technique(b) and _technique(a) != _technique(b)]
    assert not cross, "\n".join(cross)


def test_the_example_pass_in_the_docs_runs(monkeypatch):
    """``examples/weight_only_pass.py`` (the pass docs/architecture.md tells a newcomer to
    copy) registers, takes its place in the order, quantizes the layers its option selects
    and stays close to the float model (int8 weights per output channel)."""
    import sys

    import numpy as np
    import torch

    import qcompile as qc
    from qcompile import pipelines

    sys.path.insert(0, str(ROOT.parent))
    from examples.weight_only_pass import WeightOnly

    monkeypatch.setattr(pipelines, "ORDER", list(pipelines.ORDER))
    monkeypatch.setattr(pipelines, "PASSES", dict(pipelines.PASSES))
    monkeypatch.setattr(pipelines, "PIPELINES", dict(pipelines.PIPELINES))
    qc.register_pass(WeightOnly, after="qdq-sim")
    qc.register("w8", [WeightOnly], "int8 weight-only linear layers")
    assert [p.name for p in qc.pipeline("bfp+w8+rotate")] == ["canonicalize", "rotate", "weight-only", "k-sort", "bfp"]

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32), torch.nn.Linear(32, 4)

        def forward(self, x):
            return self.c(torch.relu(self.b(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    m, x = M().eval(), torch.randn(3, 32)
    model = qc.load(m, example_inputs=(x,))
    pm = qc.PassManager(qc.pipeline("w8", min_in=64))  # only the layer with 64 inputs
    out = pm.run(model.mod)
    assert pm.records[-1].notes["weight_only"]["linear_layers"] == 1
    pm = qc.PassManager(qc.pipeline("w8"))
    out = pm.run(model.mod)
    stats = pm.records[-1].notes["weight_only"]
    assert stats["linear_layers"] == 3 and stats["weight_bytes_after"] < stats["weight_bytes_before"] / 3
    want = m(x).detach().numpy()
    got = qc.build(out).run(x.numpy())[0]
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()
    with pytest.raises(qc.QCompileError, match="none of its passes has it"):
        qc.pipeline("w8", bits=4)
