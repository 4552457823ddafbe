"""What the CLI says while it works, on stderr: a status line per step (load, passes,
build) and a progress bar for the slow loops (calibration, evaluation). On a terminal the
bars redraw in place (tqdm); when stderr is a file or a pipe (CI logs), each bar is two
plain lines, its start and its end, instead of carriage-return redraws."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


def _tty() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def status(msg: str, enabled: bool = True) -> None:
    if enabled:
        print(f"qcompile: {msg}", file=sys.stderr, flush=True)


def _count(n, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "es" if unit.endswith(("ch", "sh", "s")) else "s")


class _Plain:
    """Two lines for a bar on a non-terminal: what starts, and what was done in what time."""

    def __init__(self, total, desc: str, unit: str):
        self.desc, self.unit, self.n, self.open = desc, unit, 0, True
        self.t0 = time.perf_counter()
        status(f"{desc}: {_count(total, unit) if total is not None else '...'}")

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self.open:
            self.open = False
            status(f"{self.desc}: {_count(self.n, self.unit)} done in {time.perf_counter() - self.t0:.1f} s")


def bar(total=None, desc: str = "", unit: str = "it", enabled: bool = True):
    """A progress bar with ``update(n)`` and ``close()``: tqdm on a terminal, start/end lines
    otherwise, nothing when not ``enabled``."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if _tty():
        return tqdm(total=total, desc=desc, unit=unit)
    return _Plain(total, desc, unit)


def iterate(iterable, total=None, desc: str = "", unit: str = "it", enabled: bool = True):
    """``iterable`` with a :func:`bar` advanced per item."""
    b = bar(total, desc, unit, enabled)
    try:
        for item in iterable:
            yield item
            b.update(1)
    finally:
        b.close()
