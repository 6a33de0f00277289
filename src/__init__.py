"""todobot: a release manager's TODO list in IRC, Matrix and mail.

The installed package maps the repository's folders into one namespace:
`todobot.bot` (process wiring and transports), `todobot.commands` (the command language and
its replies) and `todobot.storage` (SQLite and the list formats). Imports flow one way:
bot -> commands -> storage.
"""


def __getattr__(name: str) -> str:
    """`__version__`, looked up on first use: importlib.metadata (with the email and zipfile
    modules it imports) costs every process ~2.4 MB of RSS (bench/memory.py), and only the
    status page and `todobot --version` ask."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version
    try:
        value = version("release-todobot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value
