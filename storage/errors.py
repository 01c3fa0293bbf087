"""The lab's user-facing error, defined in the lowest layer so that storage can raise it too.

engine.toolkit.config re-exports it (`from engine.toolkit.config import LabError` keeps working).
"""


class LabError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do.

    Shown without a traceback on the page and the CLI (non-zero exit)."""
