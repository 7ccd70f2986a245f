"""Secret values masked in output, as CI systems mask them in logs (docs/architecture.md, Secrets).

What an action prints, returns or fails with is stored and shown; any secret value it was given
that appears there is replaced by ``********``. `SecretValues` holds the texts to look for: each
secret parameter's value as a string (a non-string value as its JSON text), and for a string also
its JSON-escaped form, so a value found inside JSON text (a result, a stored entry) is found too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from attune.packs.parameters import REDACTED

#: What a masked secret reads as.
MASK: Final = REDACTED


@dataclass(frozen=True)
class SecretValues:
    """The texts a run's secret values appear as, longest first (so a secret that contains
    another is masked whole)."""

    texts: tuple[str, ...]

    @classmethod
    def of(cls, values: Iterable[Any]) -> SecretValues:
        """From secret values; empty ones are skipped (masking "" would mask everything)."""
        found: set[str] = set()
        for value in values:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            if not text:
                continue
            found.add(text)
            escaped = json.dumps(text)[1:-1]
            if escaped != text:
                found.add(escaped)
        return cls(tuple(sorted(found, key=len, reverse=True)))

    @classmethod
    def of_parameters(cls, parameters: Mapping[str, Any], names: Iterable[str]) -> SecretValues:
        """The values of the named (secret) parameters."""
        return cls.of(parameters[name] for name in names if name in parameters)

    def __bool__(self) -> bool:
        return bool(self.texts)

    def found_in(self, text: str) -> bool:
        """True when any secret value appears in `text`."""
        return any(secret in text for secret in self.texts)

    def mask_text(self, text: str) -> str:
        """`text` with every secret value replaced by ``********``."""
        for secret in self.texts:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def mask(self, value: Any) -> Any:
        """A JSON value with every secret inside its strings (keys included) masked."""
        if isinstance(value, str):
            return self.mask_text(value)
        if type(value) is dict:
            return {self.mask_text(k): self.mask(v) for k, v in value.items()}
        if type(value) is list:
            return [self.mask(v) for v in value]
        if value is not None and not isinstance(value, bool) and json.dumps(value) in self.texts:
            return MASK  # a secret number given as a number
        return value


NO_SECRETS: Final = SecretValues(())
