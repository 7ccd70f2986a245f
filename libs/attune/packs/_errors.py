"""The one error a pack registration raises: every problem found, each naming file and field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PackError", "PackProblem"]


@dataclass(frozen=True)
class PackProblem:
    """One thing wrong with a pack.

    ``file`` is pack-relative, or ``""`` when the whole pack is wrong (too many files, too
    large). ``field`` is a dotted path (``parameters.count.type``), a task location in the
    workflow engine's words (``task "deploy", field next[1].when``), or ``""`` when the whole
    file is wrong.
    """

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        if not self.file:
            return f"the pack: {self.message}"
        if not self.field:
            return f"{self.file}: {self.message}"
        if self.field.startswith('task "'):
            return f"{self.file}: {self.field}: {self.message}"
        return f"{self.file}: field {self.field}: {self.message}"


class PackError(Exception):
    """A pack refused as a whole; ``problems`` lists everything wrong with it, one per line."""

    def __init__(self, problems: list[PackProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
