"""Named pipelines, their composition, and TOML recipes.

Every pipeline starts with ``canonicalize``. Technique pipelines register themselves with
:func:`register` and an ``order`` number; ``a+b`` runs the components in that one
canonical order whatever order the user wrote them in (rotation before block formats
before KV-cache quantization before integer lowering).

A recipe file lists passes and options::

    # my.toml
    [[pass]]
    name = "canonicalize"

    [[pass]]
    name = "some-pass"
    option = 3
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import QCompileError
from .passes.canonicalize import Canonicalize
from .passmanager import Pass


PASSES: dict[str, type[Pass]] = {"canonicalize": Canonicalize}


@dataclass(frozen=True)
class PipelineDef:
    name: str
    order: int
    description: str
    build: Callable[[], list[Pass]]


PIPELINES: dict[str, PipelineDef] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"pass name '{cls.name}' registered twice")
    PASSES[cls.name] = cls
    return cls


def register(name: str, order: int, description: str, build: Callable[[], list[Pass]]) -> None:
    PIPELINES[name] = PipelineDef(name, order, description, build)


register("none", 0, "canonicalize only: float model, idioms recognized, no quantization", lambda: [])


def pipeline(spec: str, options: dict[str, dict] | None = None) -> list[Pass]:
    """Passes for ``spec``: a name, names joined by ``+``, or a path to a ``.toml`` recipe.

    ``options`` sets pass options by pass name, over the pipeline's own
    (``pipeline("bfp", {"bfp": {"block": 16}})``); naming a pass the pipeline does not run is
    an error."""
    if spec.endswith(".toml"):
        passes = load_recipe(Path(spec))
    else:
        names = [s.strip() for s in spec.split("+")]
        for n in names:
            if n not in PIPELINES:
                raise QCompileError(f"unknown pipeline '{n}'", hint=f"known: {', '.join(sorted(PIPELINES))}")
        if len(set(names)) != len(names):
            raise QCompileError(f"pipeline '{spec}' names a component twice")
        if "none" in names and len(names) > 1:
            raise QCompileError("'none' cannot be combined with other pipelines")
        passes = [Canonicalize()]
        for d in sorted((PIPELINES[n] for n in names), key=lambda d: d.order):
            passes += d.build()
    for name, opts in (options or {}).items():
        hits = [i for i, p in enumerate(passes) if p.name == name]
        if not hits:
            raise QCompileError(f"options for pass '{name}', which pipeline '{spec}' does not run",
                                hint=f"its passes: {', '.join(p.name for p in passes)}")
        for i in hits:
            p = passes[i]
            own = {f.name: getattr(p.config, f.name) for f in dataclasses.fields(p.config)}
            passes[i] = type(p)(**{**own, **opts})
    return passes


def load_recipe(path: Path) -> list[Pass]:
    if not path.exists():
        raise QCompileError(f"recipe file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise QCompileError(f"recipe {path} is not valid TOML: {e}") from None
    entries = data.get("pass")
    if not isinstance(entries, list) or not entries:
        raise QCompileError(f"recipe {path} lists no passes", hint="add [[pass]] tables with a name")
    passes = []
    for i, entry in enumerate(entries):
        opts = dict(entry)
        name = opts.pop("name", None)
        if name not in PASSES:
            raise QCompileError(f"recipe {path}, pass #{i + 1}: unknown pass '{name}'",
                                hint=f"known: {', '.join(sorted(PASSES))}")
        passes.append(PASSES[name](**opts))
    if passes[0].name != "canonicalize":
        passes.insert(0, Canonicalize())
    return passes


def describe() -> list[str]:
    """One line per pipeline, in canonical order (``qcompile --list-pipelines``)."""
    defs = sorted(PIPELINES.values(), key=lambda d: (d.order, d.name))
    width = max(len(d.name) for d in defs)
    return [f"{d.name:<{width}}  {d.description}" for d in defs]


from .passes import load_builtin as _load_builtin  # noqa: E402 - after the registry exists

_load_builtin()
