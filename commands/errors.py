"""What a command raises instead of answering: the dispatcher turns each into one line."""


class UsageError(Exception):
    """Malformed arguments; an optional detail says what was wrong."""


class Refused(Exception):
    """The command was understood but is not allowed or not possible; the text says why."""
