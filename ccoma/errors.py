"""User-facing errors: one clear line, no traceback from the CLI."""
from __future__ import annotations

import reprlib

EXCERPT_CHARS = 60  # a value quoted in an error message is cut to this many characters

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = EXCERPT_CHARS, EXCERPT_CHARS, 30


def excerpt(value, limit: int = EXCERPT_CHARS) -> str:
    """A short, one-line ``repr`` of ``value`` for error messages.

    Bounded whatever the value: ``reprlib`` stops at a few items and two levels, so a YAML alias bomb
    (billions of shared references) costs nothing to quote. Newlines are escaped by ``repr``.
    """
    text = _REPR.repr(value).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CcomaError(Exception):
    """Bad input or an unrecoverable condition the user can fix.

    The CLI prints ``str(err)`` on one line and exits non-zero.
    """


class ConfigError(CcomaError):
    """A config, map, unit or scenario file is malformed or inconsistent."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")
