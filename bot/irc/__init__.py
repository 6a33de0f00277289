"""The IRC transport (`IrcTransport`); the modules of this package hold its parts."""

from .transport import IrcTransport

__all__ = ["IrcTransport"]
