"""The engine's exception types. Each message names the bad value and what would be valid."""
from __future__ import annotations


class DSEError(Exception):
    """Base class of every error the engine raises on purpose."""


class SpaceError(DSEError, ValueError):
    """An invalid parameter, space, configuration or constraint."""


class ExpressionError(SpaceError):
    """A constraint or condition expression that does not parse or uses a forbidden construct."""


class ObjectiveError(DSEError, ValueError):
    """An objective that returns the wrong thing (missing metric, wrong shape, bad direction)."""


class OptimizerError(DSEError, ValueError):
    """An unknown optimizer or invalid optimizer settings."""


class StudyError(DSEError, ValueError):
    """A study that cannot be created, loaded or used as asked."""


class StorageError(DSEError):
    """A storage that cannot be opened or written."""
