"""The one exception type that reaches users as a one-line message."""


class NeuralensError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The CLI prints ``error: <message>`` and exits with ``exit_code`` (2); the Python API lets it propagate.
    """

    exit_code = 2


class Interrupted(NeuralensError):
    """The user pressed Ctrl-C; the partial result has been saved where possible."""

    exit_code = 130
