"""User-facing errors.

Every failure the user can cause (bad file, unsupported op, shape mismatch, NaN weights,
missing calibration data) raises :class:`QCompileError`. The CLI prints its one-line
message and exits with code 2; nothing is left in the output folder.
"""


class QCompileError(Exception):
    """An error caused by the input, reported to the user as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class UnsupportedOpError(QCompileError):
    """The model contains an operator no frontend or pass can handle."""

    def __init__(self, node: str, op_type: str, need: str):
        super().__init__(f"unsupported op: node '{node}' has op type '{op_type}'", hint=need)
        self.node, self.op_type = node, op_type


class PassError(QCompileError):
    """A pass failed; names the pass and the binding it was rewriting."""

    def __init__(self, pass_name: str, binding: str | None, cause: BaseException):
        where = f" at binding '{binding}'" if binding else ""
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"pass '{pass_name}' failed{where}: {type(cause).__name__}: {first}")
        self.pass_name, self.binding, self.cause = pass_name, binding, cause
