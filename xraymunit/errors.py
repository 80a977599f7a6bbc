"""The one base class for errors a user can fix (bad input, bad config, missing files).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class XraymunitError(Exception):
    """An error caused by the user's input, with a message that says what to do."""
