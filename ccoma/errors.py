"""User-facing errors: one clear line, no traceback from the CLI."""


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
