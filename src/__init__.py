"""todobot: a release manager's TODO list in IRC, Matrix and mail.

The installed package maps the repository's folders into one namespace:
`todobot.bot` (process wiring and transports), `todobot.commands` (the command language and
its replies) and `todobot.storage` (SQLite and the list formats). Imports flow one way:
bot -> commands -> storage.
"""

# The one place the version is written: pyproject.toml reads it (`dynamic`), and the code
# needs no importlib.metadata lookup for it (~1.4 MB of RSS with the email and zipfile
# modules it imports: bench/memory.py).
__version__ = "0.3.0"
