"""Matrix rooms as chat rooms for todobot, over matrix-nio with a sync loop of our own.

What the transport guarantees:
- one login per data directory: the access token and device id are kept in
  `<data_dir>/credentials.json` and restored on restart, so restarts add no devices;
- `next_batch` lives in the bot's SQLite database; the backlog before the very first sync is
  skipped, and every event is handled at most once (the dispatcher records the event id in the
  same transaction as the command's effect);
- a sync whose timeline is `limited` (a long downtime) is completed by paging back with
  /messages to the previous token, within `gap_fetch_max` events and 24 h;
- answers are cut into events far under the 64 KiB event limit, measured in bytes as sent
  (in an encrypted room, the ciphertext), `max_events` at a time, the rest on `!more`; an
  event the server still refuses as too large is sent again cut smaller, else one line says
  so; a reply or thread message means the item(s) the message it answers named;
- a homeserver that fails is retried after 5 s, doubling to 320 s, reset by the first good
  sync; one that is unreachable costs one TCP connect per probe interval, and the loop resumes
  as soon as it accepts connections again; HTTP 429 waits the `retry_after_ms` it names;
- encrypted rooms are read and answered encrypted when matrix-nio's E2EE support is installed
  (devices of room members are trusted: this is a bot); without it, the bot says once that it
  cannot read the room and never sends anything else there.

Where each job lives (docs/architecture.md has the same map):
  transport.py  MatrixTransport: start, stop, the state the parts share
  session.py    the client and device, login and credentials.json, E2EE keys, goodbye
  sync.py       the sync loop, next_batch, gap back-fill, backoff and probes
  events.py     sync events -> Messages: who the sender is, what is ignored
  claims.py     what "I can take this one" means: replies, threads, edits, the room
  sending.py    answers, `!more`, size splitting, the encrypted-room guard, retries
  direct.py     change notices (`!watch`) in a direct room with the watcher, made once
  rooms.py      joins, invites, leaves, a reload's room changes
  upgrades.py   tombstones: who may move the bot, to which room
  render.py     Reply -> event content (pills, HTML, sizes), the text people saw
  errors.py     what goes wrong talking to a homeserver, and what is done about it

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
