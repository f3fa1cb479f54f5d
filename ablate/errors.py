"""The one exception type for mistakes a user can fix.

The CLI turns a `UserError` into one clear line on stderr and exit code 2; anything
else is a runtime failure (exit 1). Messages say what is wrong and how to fix it;
`suggest` adds a "did you mean" for a misspelt name.
"""

import difflib

__all__ = ["UserError", "suggest"]


class UserError(Exception):
    """A mistake the user can fix: bad study file, missing data, bad option."""


def suggest(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    """'; did you mean ...?' for a close match of `key` in `allowed`, else ''."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
