"""The catalog's error type."""
from __future__ import annotations

from dse.errors import DSEError


class CatalogError(DSEError, KeyError, ValueError):
    """An unknown GPU or model name, or an invalid catalog record or data file.

    A `KeyError` (lookups by name) and a `ValueError` (bad records) at once, so callers may catch either.
    The message names the bad value and what would be valid (close matches for unknown names).
    """

    def __str__(self) -> str:  # KeyError.__str__ would repr() the message
        return str(self.args[0]) if self.args else ""
