import copy
import dataclasses
import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from tvm import relax
from tvm.relax import op as O
from tvm.relax.dpl import is_const, is_op, wildcard

import qcompile as qc
from qcompile.errors import PassError, QCompileError
from qcompile.rewrite import rewrite


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    factor: float = 2.0
    times: int = 1


class ScaleOutputs(qc.Pass):
    """Test pass: scales every layer_norm's output by scaling its constant gamma and beta."""

    name = "scale-ln"
    Config = ScaleConfig

    def transform(self, mod, ctx):
        x, g, b = wildcard(), is_const(), is_const()
        pat = is_op("relax.nn.layer_norm")(x, g, b)
        k = relax.const(self.config.factor, "float32")

        def scale(call, m):  # gamma/beta become calls, so the new layer_norm no longer matches
            return O.nn.layer_norm(m[x], O.multiply(m[g], k), O.multiply(m[b], k), axes=[-1],
                                   epsilon=float(call.attrs.epsilon))

        f = rewrite(pat, scale, mod["main"])
        ctx.notes["factor"] = self.config.factor
        out = mod.clone() if hasattr(mod, "clone") else mod
        out["main"] = f
        return out


class Explode(qc.Pass):
    name = "explode"

    def transform(self, mod, ctx):
        pat = is_op("relax.nn.gelu")(wildcard())

        def fail(call, m):
            raise ValueError("boom in rewriter")

        out = mod.clone()
        out["main"] = rewrite(pat, fail, mod["main"])
        return out


class NeedsStats(qc.Pass):
    name = "needs-stats"
    needs_calibration = True

    def calibration_requests(self, mod):
        return {mod["main"].params[0]: [qc.MinMax()]}

    def transform(self, mod, ctx):
        return mod


def _canon(tiny_encoder):
    m, inp = tiny_encoder
    return qc.load(m, example_inputs=inp).mod


def test_records_ir_times_and_histograms(tiny_encoder, tmp_path):
    pm = qc.PassManager(qc.pipeline("none"), ir_dir=tmp_path / "ir")
    pm.run(_canon(tiny_encoder))
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["00_input.py", "01_canonicalize.py"]
    assert "qcompile.attention" in (tmp_path / "ir" / "01_canonicalize.py").read_text()
    (rec,) = pm.records
    assert rec.name == "canonicalize" and rec.seconds > 0
    assert rec.ops_after["composite:qcompile.attention"] == 1 and "composite:qcompile.attention" not in rec.ops_before
    assert rec.changed_ops()["nn.softmax"] == -1  # moved inside the attention composite
    assert "nn.gelu" not in rec.changed_ops()  # torch.export already emits R.nn.gelu


def test_ir_text_byte_identical_across_processes(tmp_path):
    code = textwrap.dedent("""
        import hashlib, torch, qcompile as qc
        from qcompile.models.tiny import TinyDecoder, decoder_inputs
        torch.manual_seed(0)
        m = TinyDecoder().eval()
        pm = qc.PassManager(qc.pipeline("none"), ir_dir=r"{d}")
        pm.run(qc.load(m, example_inputs=decoder_inputs()).mod)
        print(hashlib.sha1(open(r"{d}/01_canonicalize.py", "rb").read()).hexdigest())
    """)
    digests = set()
    for seed in ("1", "2"):
        d = tmp_path / seed
        r = subprocess.run([sys.executable, "-c", code.format(d=d)], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr[-2000:]
        digests.add(r.stdout.strip().splitlines()[-1])
    assert len(digests) == 1


def test_typed_config():
    p = ScaleOutputs(factor=3, times=2)
    assert p.config.factor == 3.0 and isinstance(p.config.factor, float)
    with pytest.raises(QCompileError, match="has no option 'nope'"):
        ScaleOutputs(nope=1)
    with pytest.raises(QCompileError, match="option 'times' must be int"):
        ScaleOutputs(times="2")
    with pytest.raises(QCompileError, match="option 'times' must be int"):
        ScaleOutputs(times=True)


def test_pass_runs_and_changes_numbers(tiny_encoder, tmp_path):
    mod = qc.canonicalize(_canon(tiny_encoder))
    pm = qc.PassManager([ScaleOutputs(factor=2.0)], ir_dir=tmp_path)
    out = pm.run(mod)
    assert pm.records[0].notes == {"factor": 2.0} and pm.records[0].changed_ops() == {"multiply": 4}
    m, inp = tiny_encoder
    ref = copy.deepcopy(m)
    with torch.no_grad():
        for ln in (ref.ln1, ref.ln2):
            ln.weight *= 2
            ln.bias *= 2
        want = ref(*inp).numpy()
    np.testing.assert_allclose(qc.build(out).run(*[t.numpy() for t in inp])[0], want, rtol=1e-4, atol=1e-5)


def test_error_names_pass_and_binding(tiny_encoder):
    mod = qc.canonicalize(_canon(tiny_encoder))
    gelu_var = [b.var.name for b in mod["main"].body.blocks[0].bindings
                if isinstance(b.value, relax.Call) and getattr(b.value.op, "name", "") == "relax.nn.gelu"]
    with pytest.raises(PassError) as e:
        qc.PassManager([Explode()]).run(mod)
    assert e.value.pass_name == "explode" and e.value.binding == gelu_var[0]
    assert str(e.value) == f"pass 'explode' failed at binding '{gelu_var[0]}': ValueError: boom in rewriter"


def test_calibration_required(tiny_encoder):
    mod = qc.canonicalize(_canon(tiny_encoder))
    with pytest.raises(QCompileError, match="needs calibration data"):
        qc.PassManager([NeedsStats()]).run(mod)
    x, mask = (t.numpy() for t in tiny_encoder[1])
    pm = qc.PassManager([NeedsStats()], calibration=qc.Calibration({"x": x, "mask": mask}, progress=False))
    pm.run(mod)


class Runaway(qc.Pass):
    name = "runaway"

    def transform(self, mod, ctx):
        pat = is_op("relax.nn.gelu")(wildcard())
        out = mod.clone()
        out["main"] = rewrite(pat, lambda call, m: O.nn.gelu(call), mod["main"])  # matches itself forever
        return out


def test_nonterminating_rewrite_is_an_error(tiny_encoder):
    with pytest.raises(PassError, match="pass 'runaway' failed at binding .*does not terminate"):
        qc.PassManager([Runaway()]).run(qc.canonicalize(_canon(tiny_encoder)))


def test_duplicate_pass_refused():
    with pytest.raises(QCompileError, match="appears twice"):
        qc.PassManager([ScaleOutputs(), ScaleOutputs()])
