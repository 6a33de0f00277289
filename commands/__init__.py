"""The command language. Importing this package registers every command."""

from . import claims, help, items, listing, people, rooms, search, timeline, triage, watch  # noqa: F401  (registration)
from . import digest  # noqa: F401,I001  (after timeline: !digest and !stale follow it in !help)
from .context import Context
from .natural import ClaimIntent, claim_intent
from .registry import (COMMANDS, PATTERNS, Command, Pattern, Refused, UsageError, all_commands,
                       command, lookup, pattern)
from .settings import Settings

__all__ = ["COMMANDS", "PATTERNS", "ClaimIntent", "Command", "Context", "Pattern", "Refused",
           "Settings", "UsageError", "all_commands", "claim_intent", "command", "lookup", "pattern"]
