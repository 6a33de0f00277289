"""The command language. Importing this package registers every command."""

from . import claims, help, items, listing, people, rooms, timeline, triage  # noqa: F401  (registration)
from . import digest  # noqa: F401,I001  (after timeline: !digest and !stale follow it in !help)
from .context import Context
from .natural import ClaimIntent, claim_intent
from .registry import COMMANDS, Command, Refused, UsageError, all_commands, command, lookup

__all__ = ["COMMANDS", "ClaimIntent", "Command", "Context", "Refused", "UsageError",
           "all_commands", "claim_intent", "command", "lookup"]
