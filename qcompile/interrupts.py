"""Ctrl-C while a command runs: the SIGINT handler the CLI installs and the state the
driver checks between steps (a module of its own: the CLI installs it, the driver reads it,
neither imports the other for it)."""
from __future__ import annotations

import contextlib
import signal
import threading


class Interrupts:
    """Ctrl-C while the CLI runs. TVM's FFI turns a ``KeyboardInterrupt`` raised inside a
    C++ -> Python callback (a pass's visitor, a schedule rule) into a bare ``RuntimeError``,
    which a pass reports as its failure, an internal error surfaces as exit 1, or a
    fallback swallows (the compile then went on and replaced ``OUT``). So the CLI's SIGINT
    handler records the signal (:attr:`seen`) before it raises ``KeyboardInterrupt``, and
    every exit path asks :attr:`seen` first: an interrupted run says "interrupted" and exits
    130, whatever exception the interrupt became. The driver checks it between steps
    (:meth:`check`) and right before its one commit, the rename of the temporary folder
    onto ``OUT``, which runs :meth:`deferred` (a signal there is recorded, not raised, so
    that ``OUT`` is never left moved aside)."""

    def __init__(self):
        self.seen = False
        self.committed = None  # the OUT a compile replaced (an interrupt after it comes too late to stop it)
        self._defer = 0

    def reset(self) -> None:
        self.seen, self.committed, self._defer = False, None, 0

    def handler(self, signum, frame) -> None:
        self.seen = True
        if not self._defer:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """A critical section: SIGINT is recorded but not raised inside it."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if SIGINT arrived (and was swallowed on its way)."""
        if self.seen:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self, for_the_process: bool = False):
        """The handler for the duration of one command, the previous one restored after.
        Not installed outside the main thread, nor where SIGINT is ignored (a background job).
        ``for_the_process`` (the ``qcompile`` command itself): the handler stays, deferring,
        after the command returned, so that a Ctrl-C during the interpreter's exit (about a
        second of TVM's and torch's teardown) does not turn a finished compile's exit 0 into
        a death by SIGINT."""
        self.reset()
        install = threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        previous = signal.signal(signal.SIGINT, self.handler) if install else None
        try:
            yield self
        finally:
            if install and for_the_process:
                self._defer += 1  # the command is over: a late Ctrl-C is recorded, not raised
            else:
                if install:
                    signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
                self.reset()  # a caller's later compile_model() (no CLI) sees no interrupt of this one


#: the CLI's interrupt state (the driver checks it between steps and before it replaces OUT)
INTERRUPTS = Interrupts()
