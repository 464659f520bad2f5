"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class MivaError(Exception):
    """An error whose message is meant for the user: it names the file, row or key at fault."""

    exit_code = 2


class ConfigError(MivaError):
    """A preset or override that does not validate."""


class DataError(MivaError):
    """A dataset, file or row that does not follow the sample contract."""


class NotBuiltError(MivaError):
    """A stage whose implementation has not landed yet."""

    exit_code = 3
