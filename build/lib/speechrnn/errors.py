"""The one exception type for mistakes a user can fix (bad input, missing data, wrong checkpoint)."""


class SpeechRNNError(Exception):
    """A problem with the user's input; the message names the thing and the fix.

    The CLI prints the message on one line and exits with status 2; bugs stay tracebacks.
    """
