"""The one exception type for mistakes a user can fix.

The CLI turns a `UserError` into one clear line on stderr and exit code 2; anything
else is a runtime failure (exit 1). Messages say what is wrong and how to fix it;
`suggest` adds a "did you mean" for a misspelt name. `Interrupted` is Ctrl-C during
training, saying what was kept.

A message that names an option says it twice: in the CLI's words (`--wait`, the
message itself) and in the Python API's (`wait=True`, `UserError.api`), since a
notebook user has no flags to pass; `ablate.api` raises the API's words, except under
the CLI (`cli_words`), which calls the same API.
"""

import contextlib
import contextvars
import difflib
from collections.abc import Iterator

__all__ = ["Interrupted", "UserError", "cli_words", "speaking_cli", "suggest"]

_CLI = contextvars.ContextVar("ablate_cli_words", default=False)


@contextlib.contextmanager
def cli_words() -> Iterator[None]:
    """While the CLI runs a command: user errors keep the CLI's words (`--wait`)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def speaking_cli() -> bool:
    return _CLI.get()


class UserError(Exception):
    """A mistake the user can fix: bad study file, missing data, bad option.

    `str(error)` is the CLI's wording; `error.api` the same message for a caller of the
    Python API (the same text when it names no option)."""

    def __init__(self, message: str, *, api: str | None = None) -> None:
        super().__init__(message)
        self.api = message if api is None else api

    def in_api_words(self) -> "UserError":
        """This error as the Python API raises it: its message in the API's words."""
        return UserError(self.api)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while a study trained; `str(error)` is one line saying what was kept and how
    to go on ("interrupted: 3 of 20 epochs of cohort 1 kept; rerun the same command to
    continue")."""


def suggest(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    """'; did you mean ...?' for a close match of `key` in `allowed`, else ''."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
