"""Errors the user can fix. The CLI prints them as one line (no traceback) and exits 2."""


class UserError(Exception):
    """Bad input from the user: a missing path, a malformed file, an incompatible checkpoint.

    The message must name the offending file or flag and say what was expected.
    """
