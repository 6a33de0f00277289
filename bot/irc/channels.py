"""IRC channels as rooms: which to be in, joining them, and getting back in.

Channel names fold by the server's CASEMAPPING; each configured channel is bound to its
settings at the dispatcher. The bot joins them after registration (after its NickServ
login, when it has one), a few per JOIN; after a kick it rejoins, waiting twice as long
each time when kicked again soon; a refused join (banned, full, invite-only, keyed,
registered only) is tried again with a long backoff; an invite to a configured channel is
taken. A reloaded configuration joins channels added and parts channels removed live.
"""

from __future__ import annotations

import logging
import time

from ..config import Config
from ..rooms import room_entry, room_settings
from ..transport import Reconfigured
from .connection import IrcConnection, IrcLine

log = logging.getLogger(__name__)

REJOIN_AFTER_KICK = 5.0  # the first rejoin after a kick; each kick soon after doubles it
KICK_BACKOFF_MAX = 600.0
KICK_CALM = 600.0  # a kick this long after the previous one starts the waits over
BANNED_BACKOFF = (60.0, 3600.0)  # after 474 (banned): first retry, longest wait
# Network settings read at each use, so a reload applies them to the running connection.
LIVE_NETWORK_KEYS = ("long_replies", "max_lines")


class ChannelsMixin:
    """Joins, kicks, refused joins, invites and the reload of channels (a part of `IrcTransport`)."""

    def rooms(self) -> list[str]:
        return list(self._channels)

    def _refold(self) -> None:
        self._channels = {self._fold(name): name for name in self._settings}

    def _bind_rooms(self) -> None:
        if self._dispatcher is None:
            return
        self._dispatcher.bind_default(self.name, self._default_settings)
        for folded, name in self._channels.items():
            self._dispatcher.bind_room(self.name, folded, self._settings[name])

    def apply_config(self, config: Config) -> Reconfigured:
        """Re-bind the channels' settings; JOIN channels added and PART channels removed on the
        live connection (or at the next registration). Connection settings wait for a restart."""
        out = Reconfigured()
        net = next((n for n in config.irc if n.network == self.net.network), None)
        if net is None:
            out.restart.append(f"{self.name}: removed from the configuration; still connected "
                               "until a restart")
            return out
        self.config, self.prefix = config, config.prefix
        old = dict(self._channels)  # folded -> name
        self._settings = {name: room_settings(config, release=rel, digest=dig, compact=True)
                          for name, rel, dig in (room_entry(c, "name") for c in net.channels)}
        self._default_settings = room_settings(config, compact=True)
        self._refold()
        added = [name for folded, name in self._channels.items() if folded not in old]
        removed = [name for folded, name in old.items() if folded not in self._channels]
        conn = self._conn
        live = (conn is not None and conn.registered and conn.motd_done
                and self._identify_state != "waiting")
        for name in removed:
            folded = self._fold(name)
            if self._dispatcher is not None:
                self._dispatcher.unbind_room(self.name, folded)
            self._ban_backoff.pop(folded, None)
            out.changes.append(f"{self.name}: leaving {name}")
            if live and folded in self.joined:
                conn.send("PART", name, "no longer in todobot's configuration")
        self._bind_rooms()
        for name in added:
            out.changes.append(f"{self.name}: joining {name}")
        if added and live:
            self._join_all(conn)  # else the next registration joins them
        # What is read at each use applies now; what the connection was opened with does not.
        for key in LIVE_NETWORK_KEYS:
            if getattr(net, key) != getattr(self.net, key):
                out.changes.append(f"{self.name}: {key} {getattr(self.net, key)} -> {getattr(net, key)}")
        held = sorted(k for k, v in net.model_dump(exclude={"channels", *LIVE_NETWORK_KEYS}).items()
                      if getattr(self.net, k) != getattr(net, k))
        self.net = self.net.model_copy(update={"channels": net.channels,
                                               **{k: getattr(net, k) for k in LIVE_NETWORK_KEYS}})
        if held:
            out.restart.append(f"{self.name}: {', '.join(held)} changed; reconnecting with it "
                               "takes a restart")
        return out

    def _join_all(self, conn: IrcConnection) -> None:
        if self._identify_state == "waiting":
            return  # after services confirm: +r channels need the login
        names = [n for f, n in self._channels.items() if f not in self.joined]
        line: list[str] = []
        for name in names:  # a few per JOIN, so a long list stays under the line limit
            line.append(name)
            if len(line) == 10:
                conn.send("JOIN", ",".join(line))
                line = []
        if line:
            conn.send("JOIN", ",".join(line))
        if not names:
            self.ready.set()

    def _on_005(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.casemapping != self._casemapping:
            self._casemapping = conn.casemapping
            self._refold()
            self._bind_rooms()

    def _on_join(self, conn: IrcConnection, line: IrcLine) -> None:
        nick, chan = line.nick, line.param(0)
        if conn.is_me(nick):
            conn.source = line.source  # the server just showed us our own prefix
            folded = self._fold(chan)
            self.joined.add(folded)
            self._ban_backoff.pop(folded, None)
            self._ask_accounts(conn, chan)
            if all(f in self.joined for f in self._channels):
                self.ready.set()
            return
        self._seen_join(conn, nick, chan, line)

    def _on_part(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.nick):
            self.joined.discard(self._fold(line.param(0)))
            self._left_channel(self._fold(line.param(0)))
        elif line.nick:
            # Forgotten on any PART, even with channels still shared: it costs one more
            # WHOIS and never keeps an answer about someone the bot is losing sight of.
            self._forget(line.nick)
            self._left(line.nick, line.param(0))

    def _on_kick(self, conn: IrcConnection, line: IrcLine) -> None:
        if not conn.is_me(line.param(1)):
            self._forget(line.param(1))
            self._left(line.param(1), line.param(0))
            return
        self._left_channel(self._fold(line.param(0)))
        folded = self._fold(line.param(0))
        self.joined.discard(folded)
        if folded not in self._channels:
            log.warning("%s: kicked from %s by %s: %s", self.name, line.param(0), line.nick,
                        line.param(2))
            return
        # Kicked again soon after rejoining: wait twice as long each time (a kick loop, an
        # operator who wants the bot gone), so the bot never rejoins in a tight loop.
        now = time.monotonic()
        wait, last = self._kick_backoff.get(folded, (REJOIN_AFTER_KICK, float("-inf")))
        if now - last > KICK_CALM:
            wait = REJOIN_AFTER_KICK
        self._kick_backoff[folded] = (min(KICK_BACKOFF_MAX, wait * 2), now)
        log.warning("%s: kicked from %s by %s: %s; rejoining in %.1fs", self.name, line.param(0),
                    line.nick, line.param(2), wait)
        self._later(wait, self._rejoin, conn, folded)

    def _rejoin(self, conn: IrcConnection, folded: str) -> None:
        if folded in self._channels and folded not in self.joined and conn.registered:
            conn.send("JOIN", self._channels[folded])

    def _on_474(self, conn: IrcConnection, line: IrcLine) -> None:
        """Refused a join: banned (474), or full (471), invite-only (473), keyed (475),
        registered nicks only (477). Try again later, waiting twice as long each time (up to
        an hour), and say so in the log."""
        folded = self._fold(line.param(1))
        if folded not in self._channels:
            return
        first, cap = BANNED_BACKOFF
        wait = self._ban_backoff.get(folded, first)
        self._ban_backoff[folded] = min(cap, wait * 2)
        why = {"471": "full", "473": "invite only", "474": "banned", "475": "needs a key",
               "477": "registered nicks only"}.get(line.command, line.command)
        log.warning("%s: cannot join %s (%s: %s); trying again in %.0f min", self.name,
                    line.param(1), why, line.param(2), wait / 60)
        self._later(wait, self._rejoin, conn, folded)

    _on_471 = _on_473 = _on_475 = _on_477 = _on_474

    def _on_invite(self, conn: IrcConnection, line: IrcLine) -> None:
        chan = line.param(1)
        folded = self._fold(chan)
        if folded in self._channels:
            if folded not in self.joined:
                self._ban_backoff.pop(folded, None)
                conn.send("JOIN", self._channels[folded])
        else:
            log.info("%s: ignoring invite to %s from %s (not configured)", self.name, chan,
                     line.nick)
