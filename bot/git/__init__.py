"""The git watcher: commits landing on a release's branch close the items they name.

`settings` is the config model (imported by bot/config.py, so kept light); `watcher` polls the
repositories; `commits` reads commits and their trailers with the git command (`run`).
"""
