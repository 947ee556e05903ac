"""The one exception type for mistakes a user can fix (bad input, missing data, wrong checkpoint)."""


class SpeechRNNError(Exception):
    """A problem with the user's input; the message names the thing and the fix.

    The CLI prints the message on one line and exits with status 2; bugs stay tracebacks.
    """


class TrainingDiverged(SpeechRNNError):
    """Training met a non-finite loss; ``epoch`` is the epoch it was found in.

    A sweep records it as the run's outcome (a diverged run is a result, not a crash).
    """

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch
