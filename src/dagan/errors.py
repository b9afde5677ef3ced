"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DaganError(Exception):
    """A problem the user can fix (bad input, wrong file, missing weights); never a bug."""
