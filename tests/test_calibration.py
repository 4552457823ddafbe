import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qcompile as qc
from qcompile.calibration import Histogram, tap
from qcompile.errors import QCompileError


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=6), st.integers(0, 2**31 - 1), st.floats(0.01, 1000))
def test_streaming_equals_full(sizes, seed, scale):
    rng = np.random.default_rng(seed)
    chunks = [rng.standard_normal((n, 3, 5)) * scale for n in sizes]
    mm, ch, h = qc.MinMax(), qc.AbsMaxPerChannel(axis=-1), Histogram(bins=256)
    for c in chunks:
        mm.update(c), ch.update(c), h.update(c)
    full = np.concatenate(chunks)
    assert mm.min == full.min() and mm.max == full.max()
    np.testing.assert_array_equal(ch.value, np.abs(full).max(axis=(0, 1)))
    assert h.counts.sum() == full.size
    for p in (50.0, 99.0, 100.0):
        # the histogram answers the nearest-rank percentile (inverted CDF), to within one bin
        exact = np.percentile(np.abs(full), p, method="inverted_cdf")
        assert exact <= h.percentile(p) + 1e-12 and h.percentile(p) - exact <= h.hi / h.bins + 1e-12


def test_sources(tmp_path, tiny_encoder):
    m, inp = tiny_encoder
    mod = qc.canonicalize(qc.load(m, example_inputs=inp).mod)
    x, mask = (t.numpy() for t in inp)
    var = mod["main"].body.blocks[0].bindings[2].var
    results = []
    np.savez(tmp_path / "c.npz", x=x, mask=mask)
    sources = [{"x": x, "mask": mask}, str(tmp_path / "c.npz"), [{"x": x, "mask": mask}], iter([{"x": x, "mask": mask}])]
    for src in sources:
        stats = qc.Calibration(src, batch=1, progress=False).collect(mod, {var: [qc.MinMax()]})
        results.append((stats[var][0].min, stats[var][0].max))
    assert len(set(results)) == 1
    with pytest.raises(QCompileError, match="lacks input"):
        qc.Calibration({"x": x[:1]}, progress=False).collect(mod, {var: [qc.MinMax()]})
    with pytest.raises(QCompileError, match="not found"):
        qc.Calibration(tmp_path / "missing.npz")


def test_tap_exposes_bindings(tiny_encoder):
    m, inp = tiny_encoder
    mod = qc.canonicalize(qc.load(m, example_inputs=inp).mod)
    bindings = mod["main"].body.blocks[0].bindings
    tapped = tap(mod, [bindings[0].var, bindings[-1].var])
    outs = qc.build(tapped).run(*[t.numpy() for t in inp])
    ref = qc.build(mod).run(*[t.numpy() for t in inp])[0]
    assert len(outs) == 3
    np.testing.assert_array_equal(outs[0], ref)
