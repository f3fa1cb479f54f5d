"""The one exception type for mistakes a user can fix.

The CLI turns a `UserError` into one clear line on stderr and exit code 2; anything
else is a runtime failure (exit 1). Messages say what is wrong and how to fix it.
"""


class UserError(Exception):
    """A mistake the user can fix: bad study file, missing data, bad option."""
