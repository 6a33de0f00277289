"""todobot: a release manager's TODO list in IRC, Matrix and mail.

The installed package maps the repository's folders into one namespace:
`todobot.bot` (process wiring and transports), `todobot.commands` (the command language and
its replies) and `todobot.storage` (SQLite and the list formats). Imports flow one way:
bot -> commands -> storage.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("release-todobot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
