"""How much one template evaluation may build and do, and the budget that holds it to that.

Templates run inside the coordinator, so what they build is bounded *before* it is built:
``'x' * 10**8``, ``'x' | center(10**8)``, ``2 ** 10**9``, ``'%0100000000d' % 1``, ``range(10**9)``
and a string doubled in a loop are refused in milliseconds with an ExpressionError naming the
limit (``_sandbox.py`` calls these checks from Jinja's operators, filters, loops and calls).

- ``max_bytes`` bounds each value a template builds: a string's characters; a list or mapping
  counts each item and key with what it holds, as JSON would write it, so a list holding the same
  big list twice counts it twice. The text a template renders counts too, and one evaluation may
  build at most ``BUILT_FACTOR`` times ``max_bytes`` in all.
- ``max_steps`` bounds the loop rounds and calls of one evaluation, and the length of a ``range``.
- A number has at most ``MAX_DIGITS`` digits (Python's own limit for writing an integer as text).

Data a template only passes along (parameters, results, variables) is not measured until a
template builds something from it: other limits bound it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ExpressionError

__all__ = [
    "BUILT_FACTOR",
    "DEFAULT_LIMITS",
    "LIMITS_NAME",
    "MAX_DIGITS",
    "Budget",
    "TemplateLimits",
]

#: One evaluation may build this many times ``max_bytes`` in all (every string and list on the way).
BUILT_FACTOR = 16
#: Digits of the largest integer a template may build (``sys.int_info.default_max_str_digits``).
MAX_DIGITS = 4300
_MAX_INT_BITS = int(MAX_DIGITS * math.log2(10))
#: The key under which a template context carries its limits: not a name a template can write.
LIMITS_NAME = "template limits"
_BYTES_SETTING = "ATTUNE_TEMPLATE_MAX_BYTES"
_STEPS_SETTING = "ATTUNE_TEMPLATE_MAX_STEPS"
# A printf conversion: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?.")


@dataclass(frozen=True)
class TemplateLimits:
    """What one template evaluation may build (``max_bytes``) and do (``max_steps``)."""

    max_bytes: int = 4 * 1024 * 1024
    max_steps: int = 100_000

    def to_meta(self) -> dict[str, int]:
        """The fields a workflow's state keeps (``WorkflowState.new``)."""
        return {"template_max_bytes": self.max_bytes, "template_max_steps": self.max_steps}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> TemplateLimits:
        """The limits a state was started with (the defaults for a state saved before them)."""
        return cls(
            max_bytes=meta.get("template_max_bytes", DEFAULT_LIMITS.max_bytes),
            max_steps=meta.get("template_max_steps", DEFAULT_LIMITS.max_steps),
        )


DEFAULT_LIMITS = TemplateLimits()


class Budget:
    """What one evaluation has spent: steps, bytes built, and the sizes it has measured.

    Sizes are remembered by object (templates cannot change a list or mapping in place), so a
    value built from an earlier one costs only its new part to measure."""

    __slots__ = ("limits", "sizes", "spent", "steps")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.spent = 0
        self.sizes: dict[int, tuple[Any, int]] = {}  # id -> (the object, kept alive; its size)

    # -- steps ----------------------------------------------------------------
    def step(self, count: int = 1) -> None:
        """Spend ``count`` steps (loop rounds, calls)."""
        self.steps += count
        if self.steps > self.limits.max_steps:
            raise ExpressionError(
                f"the template would take more than the limit of {self.limits.max_steps:,} steps "
                f"(loop rounds and calls; {_STEPS_SETTING})"
            )

    def check_range(self, count: int) -> None:
        """A ``range`` of ``count`` numbers."""
        if count > self.limits.max_steps:
            raise ExpressionError(
                f"range() of {count:,} numbers is over the limit of {self.limits.max_steps:,} ({_STEPS_SETTING})"
            )

    # -- sizes ----------------------------------------------------------------
    def size(self, value: Any) -> int:
        """The size of ``value`` as JSON would write it (roughly), or a number over ``max_bytes``
        as soon as it is known to be larger (the walk then stops)."""
        cls = type(value)
        if cls is str:
            return len(value)
        if cls is int:
            return _digits(value)
        if cls is float or cls is bool or value is None:
            return 4
        return self._measure(value, self.limits.max_bytes)

    def _measure(self, value: Any, cap: int) -> int:
        if isinstance(value, str):
            return len(value)
        if isinstance(value, int):
            return _digits(value)
        known = self.sizes.get(id(value))
        if known is not None:
            return known[1]
        if isinstance(value, Mapping):
            parts: Any = value.items()
        elif isinstance(value, (list, tuple)):
            parts = ((None, item) for item in value)
        else:
            return 4  # a number, null, or something that is not data (refused when written out)
        total = 2
        for key, item in parts:
            total += 2 + (0 if key is None else self._measure(key, cap))
            total += self._measure(item, cap - total)
            if total > cap:
                return total  # incomplete: not remembered
        self.sizes[id(value)] = (value, total)
        return total

    def expect(self, size: int, what: str) -> None:
        """Refuse to build ``what`` when it would be ``size`` bytes, over ``max_bytes``."""
        if size > self.limits.max_bytes:
            raise ExpressionError(
                f"{what} would build {size:,} bytes, over the limit of {self.limits.max_bytes:,} "
                f"for a value a template builds ({_BYTES_SETTING})"
            )

    def built(self, value: Any, what: str) -> Any:
        """``value``, just built by ``what``, after checking its size and counting it as built."""
        cls = type(value)
        if cls is int:
            if value.bit_length() > _MAX_INT_BITS:
                raise _too_many_digits(what, _digits(value))
            return value
        if cls is float or cls is bool or value is None:
            return value
        self.expect(self.size(value), what)
        self.spend(len(value) if isinstance(value, (str, list, tuple, dict)) else 1)
        return value

    def spend(self, size: int) -> None:
        """Count ``size`` bytes as built by this evaluation."""
        self.spent += size
        total = self.limits.max_bytes * BUILT_FACTOR
        if self.spent > total:
            raise ExpressionError(
                f"the template builds more than {total:,} bytes in all, over the limit "
                f"({BUILT_FACTOR} times {_BYTES_SETTING})"
            )

    # -- operators ------------------------------------------------------------
    def before_binop(self, operator: str, left: Any, right: Any) -> None:
        """Refuse ``left <operator> right`` when its result would be over a limit."""
        if operator == "*":
            self._before_multiply(left, right)
        elif operator == "**":
            _before_power(left, right)
        elif operator == "+":
            if isinstance(left, str) and isinstance(right, str):
                self.expect(len(left) + len(right), "adding with +")
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                self.expect(self.size(left) + self.size(right), "adding with +")
        elif operator == "%" and isinstance(left, str):
            self.before_printf(left, right, "formatting with %")

    def _before_multiply(self, left: Any, right: Any) -> None:
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > _MAX_INT_BITS + 1:
                raise _too_many_digits("multiplying with *", _digits(left) + _digits(right) - 1)
            return
        sequence, count = (left, right) if _is_int(right) else (right, left)
        if _is_int(count) and count > 0 and isinstance(sequence, (str, list, tuple)):
            self.expect(self.size(sequence) * count, f"repeating {count:,} times with *")

    def before_printf(self, text: str, args: Any, what: str) -> None:
        """``text % args`` (or ``text | format(…)``): refuse a width or precision over the limit
        (a ``*`` takes it from ``args``, so every integer there is held to it too)."""
        widest = 0
        star = False
        for match in _PRINTF.finditer(text):
            for spec in match.groups():
                if spec == "*":
                    star = True
                elif spec:
                    widest = max(widest, int(spec))
        if star:
            values = args if isinstance(args, tuple) else (args,)
            widest = max([widest, *(abs(v) for v in values if _is_int(v))])
        self.expect(len(text) + widest, what)


def _is_int(value: Any) -> bool:
    return type(value) is int or type(value) is bool


def _digits(value: int) -> int:
    """Digits of ``value`` (within one), without writing it out."""
    return int(abs(value).bit_length() * 0.30103) + 1


def _too_many_digits(what: str, digits: int) -> ExpressionError:
    return ExpressionError(f"{what} would give a number of about {digits:,} digits, over the limit of {MAX_DIGITS:,}")


def _before_power(base: Any, exponent: Any) -> None:
    if not (_is_int(base) and _is_int(exponent)) or exponent <= 0 or abs(base) <= 1:
        return  # a float overflows by itself; 0, 1 and -1 stay small
    bits = (abs(base).bit_length() - 1) * exponent
    if bits > _MAX_INT_BITS:
        raise _too_many_digits(f"raising to the power {exponent:,}", int(bits * 0.30103) + 1)
