"""What can go wrong in a CLI command, as one value: a code, a one-line message, detail lines, and
the exit status it ends with (README, CLI: exit statuses and the JSON error object).

This module imports nothing heavy: every command, even ``attune --help``, reaches it.

Codes are gRPC status names when the server answered (``NOT_FOUND``, ``INVALID_ARGUMENT``,
``UNAVAILABLE``, ``PERMISSION_DENIED``, …) and these when the CLI itself found the problem:
"""

from __future__ import annotations

from typing import Any

#: A bad command line: an unknown option, a missing argument, a value out of range (exit 2).
USAGE = "USAGE"
#: A bad ATTUNE_* environment setting (exit 2).
CONFIG = "CONFIG"
#: A file or folder the command could not read or write.
IO = "IO"
#: The command was interrupted (Ctrl-C, exit 130).
INTERRUPTED = "INTERRUPTED"
#: A fault of the CLI itself (a bug): the message names the exception.
INTERNAL = "INTERNAL"
#: Any other failure the command reports (the default).
FAILED = "FAILED"

#: Exit statuses (README, CLI).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI reports as one line on stderr (exit status 1), and with ``--output json``
    as one JSON object on stdout (:meth:`json`).

    ``details`` are printed below that line, one each (a refused pack's problems, the last output
    of a service that died); ``violations`` are the server's field violations, already part of
    the message; ``code`` says what kind of failure it is (the module docstring).
    """

    exit_status = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        details: list[str] | None = None,
        violations: list[str] | None = None,
        *,
        code: str = FAILED,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.violations = violations or []
        self.code = code

    def json(self) -> dict[str, Any]:
        """``{"error": {"code", "message", "details"}}``: the JSON error object of every command
        but ``run``, whose object keeps the execution contract with ``error`` as its message."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details or self.violations}}


class UsageError(CliError):
    """A bad command line (exit status 2): argparse's refusals and a command's own checks of its
    arguments. ``usage`` is the command's usage text, printed above the message."""

    exit_status = EXIT_USAGE

    def __init__(self, message: str, *, usage: str = "", prog: str = "attune", code: str = USAGE) -> None:
        super().__init__(message, code=code)
        self.usage = usage
        self.prog = prog
