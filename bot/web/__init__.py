"""The status page (`StatusServer`); the modules of this package hold its parts."""

from .server import StatusServer, burndown_svg, parse_listen, release_path, templates

__all__ = ["StatusServer", "burndown_svg", "parse_listen", "release_path", "templates"]
