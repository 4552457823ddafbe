import pytest

import qcompile as qc
from qcompile import pipelines
from qcompile.errors import QCompileError
from qcompile.passmanager import Pass


class _A(Pass):
    name = "test-a"


class _B(Pass):
    name = "test-b"


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(pipelines, "ORDER", pipelines.ORDER + [_A, _B])
    monkeypatch.setitem(pipelines.PASSES, "test-a", _A)
    monkeypatch.setitem(pipelines.PASSES, "test-b", _B)
    monkeypatch.setitem(pipelines.PIPELINES, "test-late", pipelines.PipelineDef("test-late", (_B,), "late"))
    monkeypatch.setitem(pipelines.PIPELINES, "test-early", pipelines.PipelineDef("test-early", (_A,), "early"))


def test_none_is_canonicalize_only():
    assert [p.name for p in qc.pipeline("none")] == ["canonicalize"]


def test_composition_uses_canonical_order(registry):
    for spec in ("test-late+test-early", "test-early+test-late"):
        assert [p.name for p in qc.pipeline(spec)] == ["canonicalize", "test-a", "test-b"]


def test_builtin_compositions_run_in_one_order_whatever_the_spelling():
    """Every pair of built-in components composes to the same pass list in both spellings
    (before the table, ``bfp+qdq-sim`` and ``qdq-sim+bfp`` ran in different orders: both
    had order 30), and that list follows :data:`pipelines.ORDER`."""
    names = [n for n in pipelines.PIPELINES if n != "none"]
    tried = 0
    for a in names:
        for b in names:
            if a >= b or any(pair <= {a, b} for pair, _ in pipelines.EXCLUSIVE):
                continue
            one, two = ([p.name for p in qc.pipeline(s)] for s in (f"{a}+{b}", f"{b}+{a}"))
            assert one == two, (a, b)
            assert one == sorted(one, key=lambda n: pipelines.ORDER.index(pipelines.PASSES[n]))
            tried += 1
    assert tried >= 8
    assert [p.name for p in qc.pipeline("qdq-sim+bfp")] == ["canonicalize", "qdq-sim", "k-sort", "bfp"]


def test_exclusive_components_refused():
    with pytest.raises(QCompileError, match="both store the key/value cache"):
        qc.pipeline("kv-prerope+bfp")


def test_order_is_one_list_of_distinct_passes():
    assert len(set(pipelines.ORDER)) == len(pipelines.ORDER)
    assert all(cls in pipelines.ORDER for d in pipelines.PIPELINES.values() for cls in d.passes)


def test_options_where_the_pipeline_is_built():
    p = qc.pipeline("int-only", shiftmax_K=28, weight_bits=7)
    assert (p[-1].config.shiftmax_K, p[-1].config.weight_bits) == (28, 7)
    assert qc.pipeline("bfp", {"bfp": {"block": 16}})[-1].config.block == 16
    with pytest.raises(QCompileError, match="option 'nope': none of its passes has it"):
        qc.pipeline("int-only", nope=1)
    with pytest.raises(QCompileError, match="must be int"):
        qc.pipeline("int-only", shiftmax_K="x")
    with pytest.raises(QCompileError, match="does not run"):
        qc.pipeline("rotate", {"bfp": {"block": 16}})


def test_register_places_a_user_pass_in_the_order(monkeypatch):
    monkeypatch.setattr(pipelines, "ORDER", list(pipelines.ORDER))
    monkeypatch.setattr(pipelines, "PASSES", dict(pipelines.PASSES))
    monkeypatch.setattr(pipelines, "PIPELINES", dict(pipelines.PIPELINES))
    qc.register_pass(_A, after="rotate")
    qc.register("mine", [_A], "a user's pipeline")
    assert [p.name for p in qc.pipeline("int-only+mine+rotate")] == \
        ["canonicalize", "rotate", "test-a", "int-prepare", "int-only"]
    with pytest.raises(ValueError, match="register_pass"):
        qc.register("bad", [_B], "unregistered pass")


def test_bad_specs(registry):
    with pytest.raises(QCompileError, match="unknown pipeline 'nope'"):
        qc.pipeline("nope")
    with pytest.raises(QCompileError, match="twice"):
        qc.pipeline("test-early+test-early")
    with pytest.raises(QCompileError, match="cannot be combined"):
        qc.pipeline("none+test-early")


def test_toml_recipe(tmp_path, registry):
    r = tmp_path / "r.toml"
    r.write_text('[[pass]]\nname = "test-a"\n')
    assert [p.name for p in qc.pipeline(str(r))] == ["canonicalize", "test-a"]
    r.write_text('[[pass]]\nname = "test-a"\nfoo = 1\n')
    with pytest.raises(QCompileError, match="has no option 'foo'"):
        qc.pipeline(str(r))
    r.write_text('[[pass]]\nname = "zzz"\n')
    with pytest.raises(QCompileError, match="unknown pass 'zzz'"):
        qc.pipeline(str(r))
    r.write_text("[[pass]\n")
    with pytest.raises(QCompileError, match="not valid TOML"):
        qc.pipeline(str(r))
    with pytest.raises(QCompileError, match="not found"):
        qc.pipeline(str(tmp_path / "none.toml"))


def test_describe_one_line_each(registry):
    lines = pipelines.describe()
    assert len(lines) == len(pipelines.PIPELINES)
    assert lines[0].startswith("none") and lines[-1].startswith("test-late")
