"""The one exception family that abkit's library raises, and how its messages name parameters.

The command line catches :class:`AbkitError` in one place (``abkit.cli.main``), prints its
message as a single line on stderr and exits with ``exit_code``. The same boundary also turns
an unreadable or unwritable file (``OSError``) and an unexpected DuckDB error into one line with
exit code 2; anything else surfaces as a traceback, which always means a bug in abkit.

Messages speak in the library's parameters: a message names one with :func:`param`, so
``str(error)`` reads ``alpha must be in (0, 1), got 2`` for a Python caller, and the CLI shows
``--alpha must be in (0, 1), got 2`` (:meth:`AbkitError.render` with the flag table of
``abkit.cli.common``, the one place that knows flags).

Exception tree::

    AbkitError                 exit 2: anything the user can fix (input, options, data)
    ├── InputError             a file, a row, a column or an option is not what was expected
    ├── StoreError             the DuckDB store: not a database, locked, wrong schema version
    │   └── StoreLockedError   another process holds the write lock
    ├── ModelError             a recommender or model file is unusable
    ├── SpecError              an experiment / gate spec file is invalid
    └── MissingExtraError      an optional dependency is not installed (names the pip line)

    AbkitWarning               something abkit did or noticed on its own (e.g. removed the stale
                               temporary files of a killed process); the CLI prints it as one
                               "warning:" line

Exit codes across the CLI: 0 success, 1 a verdict failed (a gate, ``--strict`` SRM),
2 a usage or data error, 130 interrupted.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "AbkitError",
    "AbkitWarning",
    "InputError",
    "MissingExtraError",
    "ModelError",
    "SpecError",
    "StoreError",
    "StoreLockedError",
    "param",
]

# a parameter's name inside a message, between two control characters no user text carries
_PARAM = re.compile("\x02([a-z_][a-z0-9_]*)\x03")


def param(name: str) -> str:
    """Name the parameter ``name`` inside an error message (see the module docstring)."""
    return f"\x02{name}\x03"


class AbkitError(Exception):
    """Base of every error abkit raises on purpose. The message is one line, for a user."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.render(lambda name: name)

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with each parameter shown as ``name_of(parameter)`` (a flag, say)."""
        return _PARAM.sub(lambda m: name_of(m[1]), self.message)


class InputError(AbkitError):
    """A file, row, column or option is not what was expected."""


class StoreError(AbkitError):
    """The traffic store cannot be used: not a database, wrong schema version, missing data."""


class StoreLockedError(StoreError):
    """Another process holds the DuckDB write lock on the store.

    ``path`` is the store and ``holder`` describes the process holding the lock (PID and
    command line, when known), so a command can rephrase the advice (e.g. offer ``--wait``).
    """

    def __init__(self, message: str, *, path: str = "", holder: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


class ModelError(AbkitError):
    """A recommender, or a model file it needs, is unusable."""


class SpecError(AbkitError):
    """An experiment or gate spec (TOML) or a baseline file is invalid."""


class MissingExtraError(AbkitError):
    """An optional dependency is missing; the message gives the exact install line."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{package}': pip install \"abkit-lift[{extra}]\""
        )
        self.package = package
        self.extra = extra


class AbkitWarning(UserWarning):
    """Something the user should know that is not an error (one line, printed by the CLI)."""
