"""Matrix rooms as chat rooms for todobot (transport.py: `MatrixTransport`).

Importing this package costs nothing: matrix-nio and aiohttp load only when a name below is
used, so a bot without a `matrix:` section never imports them (tests/test_import_weight.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import MatrixLoginError
    from .transport import MatrixTransport

# name -> the module of this package that holds it
_PUBLIC = {"MatrixTransport": "transport", "MatrixLoginError": "errors"}
__all__ = ["MatrixLoginError", "MatrixTransport"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
