"""`neuralens stylize | reconstruct | demo`."""


def register(subparsers) -> None:
    """Add the style-transfer subcommands."""
