"""Errors for bad input.

Every problem with a user's input (scenario TOML, firm, MAC or CCER tables) is raised as an
:class:`InputError` whose message is one line naming the file, the line (of the file,
header = line 1) or field, and the problem.
The command line prints that line and exits with status 2; nothing else is printed.
"""

from __future__ import annotations

from pathlib import Path


def interruption(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C behind ``error``, if it is one: a KeyboardInterrupt raised within compiled
    (numba) code reaches Python as a SystemError caused by it ("returned a result with an
    exception set"), wrapped again by each compiled call it passes through on its way out."""
    while isinstance(error, SystemError):
        error = error.__cause__
    return error if isinstance(error, KeyboardInterrupt) else None


class InputError(Exception):
    """A problem with user input, reported as one line: ``FILE: [line N, ][field F: ]problem``."""

    def __init__(
        self,
        file: str | Path | None,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.problem = problem
        self.line = line
        self.field = field
        parts = []
        if line is not None:
            parts.append(f"line {line}")
        if field is not None:
            parts.append(f"field '{field}'")
        where = ", ".join(parts)
        prefix = f"{self.file}: " if self.file else ""
        msg = f"{prefix}{where + ': ' if where else ''}{problem}"
        super().__init__(" ".join(msg.split()))
