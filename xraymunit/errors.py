"""The one base class for errors a user can fix (bad input, bad config, missing files).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class XraymunitError(Exception):
    """An error caused by the user's input, with a message that says what to do."""


def root_cause(exc: BaseException) -> BaseException:
    """The error behind wrapped ones: MONAI wraps a transform's error in RuntimeError("applying
    transform ..."), possibly several times; unwrap to the reader's own (cycles guarded)."""
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc
