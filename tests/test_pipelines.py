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
    monkeypatch.setitem(pipelines.PIPELINES, "test-late", pipelines.PipelineDef("test-late", 90, "late", lambda: [_B()]))
    monkeypatch.setitem(pipelines.PIPELINES, "test-early", pipelines.PipelineDef("test-early", 10, "early", lambda: [_A()]))
    monkeypatch.setitem(pipelines.PASSES, "test-a", _A)


def test_none_is_canonicalize_only():
    assert [p.name for p in qc.pipeline("none")] == ["canonicalize"]


def test_composition_uses_canonical_order(registry):
    for spec in ("test-late+test-early", "test-early+test-late"):
        assert [p.name for p in qc.pipeline(spec)] == ["canonicalize", "test-a", "test-b"]


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
