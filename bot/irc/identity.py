"""Who is who on IRC: the account behind each nick, and when that knowledge must go.

Accounts come from the server where it tells them (account-tag, extended-join and
account-notify, WHOX after our own JOIN); a line whose `account` tag the server vouches for
also records its sender's account while that nick is in sight, so a server with account-tag
alone still tells the bot whom to send a change notice to. Elsewhere a command that needs one asks WHOIS:
an answer counts only for the `nick!user@host` it describes (311), so a nick that changed
hands between the command and the answer gets the command refused (`inbound.py`), and a
kept answer is used only while the bot can see that nick go (a shared channel, or MONITOR
saying the same user@host holds it). WHOIS lines are queued per asking `user@host` ahead of
answers, a few at a time each, so clones cannot starve anyone else's. Everything known
about a nick is forgotten when it quits, changes nick, parts, is kicked, logs out or leaves
the bot's sight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

from ...commands.messages import Sender
from .connection import IrcConnection, IrcLine, nick_of, userhost_of

log = logging.getLogger(__name__)

WHOX_TOKEN = "217"
WHOIS_TTL = 60.0  # a WHOIS answer is trusted this long (no account-notify keeps it fresh)
# "Not logged in" is kept only briefly: identifying is invisible to the bot here, and a
# release manager refused a moment ago must not stay refused for a minute once identified.
WHOIS_TTL_NO_ACCOUNT = 3.0
WHOIS_CACHE_MAX = 5000
# WHOIS questions waiting for the server (queued or sent): per asking user@host (clones
# share one), and in all. A command past these is answered as "could not confirm".
WHOIS_PER_USERHOST = 2
WHOIS_PENDING_MAX = 100


@dataclass(frozen=True)
class _WhoisAnswer:
    """What one WHOIS said: whose connection held the nick (311) and its account."""

    userhost: str = ""  # "" when the server showed no 311 (the nick was gone)
    account: str | None = None


@dataclass
class _Asked:
    """A WHOIS waiting for the server: who waits, and its line in which asker's queue."""

    fut: asyncio.Future[_WhoisAnswer]
    key: str  # "whois:user@host" of the asker
    line: bytes | None
    conn: IrcConnection
    seen: dict[str, str | None] = dataclasses.field(default_factory=dict)  # 311/330/307 so far


class IdentityMixin:
    """Accounts, WHOIS, kept answers, MONITOR and who is in sight (a part of `IrcTransport`)."""

    def _new_session(self) -> None:
        """A new connection: nothing known about anyone, and it watches nothing."""
        self._accounts.clear()
        self._whois_cache.clear()
        self._members.clear()
        self._monitored.clear()  # a new connection watches nothing
        self._online.clear()

    def _session_ended(self) -> None:
        """The connection is gone: the questions it carried will never be answered."""
        for asked in self._whois_asked.values():
            if not asked.fut.done():
                asked.fut.cancel()
        self._whois_asked.clear()

    def _ask_accounts(self, conn: IrcConnection, chan: str) -> None:
        """We joined `chan`: ask the accounts of everyone in it, where WHOX tells them."""
        if getattr(conn.features, "whox", False):
            conn.send("WHO", chan, f"%tna,{WHOX_TOKEN}")

    def _seen_join(self, conn: IrcConnection, nick: str, chan: str, line: IrcLine) -> None:
        """Someone else joined `chan`: in sight, and (extended-join) their account."""
        if nick:
            self._members.setdefault(self._fold(nick), set()).add(self._fold(chan))
        if nick and "extended-join" in conn.caps and len(line.params) >= 2:
            account = line.params[1]
            self._accounts[self._fold(nick)] = None if account == "*" else account

    def _on_353(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_NAMREPLY
        if len(line.params) < 4:
            return
        chan = self._fold(line.params[2])
        prefixes = "".join(getattr(conn.features, "prefix", None) or "@+")
        for name in line.params[3].split():
            nick = nick_of(name.lstrip(prefixes))
            if nick and not conn.is_me(nick):
                self._members.setdefault(self._fold(nick), set()).add(chan)

    def _on_354(self, conn: IrcConnection, line: IrcLine) -> None:  # WHOX
        if len(line.params) >= 4 and line.params[1] == WHOX_TOKEN:
            nick, account = line.params[2], line.params[3]
            self._accounts[self._fold(nick)] = None if account in ("0", "*") else account

    def _on_account(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            account = line.param(0)
            self._accounts[self._fold(line.nick)] = None if account in ("*", "") else account
            self._forget(line.nick)

    def _seen_account_tag(self, conn: IrcConnection, line: IrcLine) -> None:
        """After a line from `nick!user@host` is handled: with account-tag, the server says
        on every line of a user whether and as whom they are logged in (no tag: not logged
        in). Kept only for a nick in sight, under the same rules as what extended-join tells,
        so QUIT, NICK, PART and KICK forget it."""
        if "account-tag" not in conn.caps or not userhost_of(line.source or ""):
            return
        nick = line.nick
        if nick and not conn.is_me(nick) and (folded := self._fold(nick)) in self._members:
            self._accounts[folded] = line.tags.get("account") or None

    # -- who the bot can see leave -----------------------------------------------------------
    def _left(self, nick: str, chan: str) -> None:
        """`nick` left one shared channel; out of sight when it was the last."""
        folded = self._fold(nick)
        chans = self._members.get(folded)
        if chans is not None:
            chans.discard(self._fold(chan))
        if not chans:
            self._lost_sight(folded)

    def _lost_sight(self, folded: str) -> None:
        """The bot can no longer see `folded` quit or change nick: nothing it knew about
        that nick's account may be used for whoever holds it next."""
        self._members.pop(folded, None)
        self._accounts.pop(folded, None)  # account-notify no longer reaches us
        self._forget(folded)

    def _left_channel(self, chan: str) -> None:
        """The bot itself left `chan`: its members are out of sight unless shared elsewhere."""
        for folded, chans in list(self._members.items()):
            chans.discard(chan)
            if not chans:
                self._lost_sight(folded)

    # -- WHOIS: accounts where the server does not tell them -------------------------------
    def _forget(self, nick: str | None) -> None:
        if not nick:
            return
        folded = self._fold(nick)
        self._whois_cache.pop(folded, None)
        if folded in self._monitored:
            self._monitored.discard(folded)
            self._online.pop(folded, None)
            conn = self._conn
            if conn is not None and conn.registered:
                conn.send("MONITOR", "-", folded)

    def _changed_hands(self, nick: str) -> None:
        """`nick` quit or changed while its WHOIS was pending: the answer will be about
        someone else (or no one), so the commands waiting for it are refused."""
        folded = self._fold(nick)
        if folded in self._whois_asked:
            for inbound in self._held.get(folded, ()):
                if inbound.whois is not None:
                    inbound.stale = True

    def _known_account(self, conn: IrcConnection, line: IrcLine, nick: str) -> tuple[bool, str | None]:
        """(known, account): what the server has told us about `nick` (as the sender of
        `line`) without asking."""
        if "account-tag" in conn.caps:
            return True, line.tags.get("account") or None  # absent: not logged in
        folded = self._fold(nick)
        userhost = userhost_of(line.source or "")
        if folded in self._accounts:
            return True, self._accounts[folded]
        cached = self._whois_cache.get(folded)
        if cached is not None and userhost and cached[0] == userhost and self._kept_valid(folded):
            return True, cached[1]
        return False, None

    def _kept_valid(self, folded: str) -> bool:
        """Whether the kept WHOIS answer for `folded` may be used now: still fresh, and about
        a nick the bot would see go."""
        userhost, account, at = self._whois_cache[folded]
        return (self._in_sight(folded, userhost)
                and time.monotonic() - at < (WHOIS_TTL if account is not None
                                             else WHOIS_TTL_NO_ACCOUNT))

    def _nick_of_account(self, account: str) -> str | None:
        """A nick the bot knows, now, to be logged in as `account` (the server told it, or a
        kept WHOIS answer still valid); None when it knows none. Never a nick merely spelled
        like the account."""
        want = self._fold(account)
        for folded, acc in self._accounts.items():
            if acc is not None and self._fold(acc) == want:
                return folded
        for folded, (_, acc, _) in list(self._whois_cache.items()):
            if acc is not None and self._fold(acc) == want and self._kept_valid(folded):
                return folded
        return None

    def _in_sight(self, folded: str, userhost: str) -> bool:
        """Whether the bot would see `folded` quit or change nick (and so forget what it
        knows): a shared channel, or MONITOR saying this very user@host holds it."""
        return folded in self._members or self._online.get(folded) == userhost

    def _ask_whois(self, conn: IrcConnection, nick: str,
                   userhost: str) -> asyncio.Future[_WhoisAnswer] | None:
        """The WHOIS answer to wait for: the one pending for this nick, or a new question;
        None when it cannot be asked (no user@host to bind the answer to, or too many
        questions pending from this user@host or in all)."""
        folded = self._fold(nick)
        asked = self._whois_asked.get(folded)
        if asked is not None:
            return asked.fut  # one question in flight per nick, so per source
        key = f"whois:{userhost}"
        if (not userhost or len(self._whois_asked) >= WHOIS_PENDING_MAX
                or sum(a.key == key for a in self._whois_asked.values()) >= WHOIS_PER_USERHOST):
            return None
        fut: asyncio.Future[_WhoisAnswer] = asyncio.get_running_loop().create_future()
        # Ahead of queued answers (a command waits), in turn with other askers.
        self._whois_asked[folded] = _Asked(fut, key, conn.ask(key, "WHOIS", nick), conn)
        return fut

    def _give_up_whois(self, folded: str, fut: asyncio.Future[_WhoisAnswer]) -> None:
        """Nobody waits for this WHOIS any more: take it back if not sent yet; the next
        command asks again."""
        asked = self._whois_asked.get(folded)
        if asked is None or asked.fut is not fut:
            return
        del self._whois_asked[folded]
        if asked.line is not None:
            asked.conn.withdraw(asked.key, asked.line)
        fut.cancel()

    def _whois_part(self, nick: str) -> dict[str, str | None] | None:
        asked = self._whois_asked.get(self._fold(nick))
        return asked.seen if asked is not None else None  # not ours: an oper's, say

    def _on_311(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISUSER
        if len(line.params) >= 4 and (seen := self._whois_part(line.params[1])) is not None:
            seen["userhost"] = userhost_of(f"{line.params[1]}!{line.params[2]}@{line.params[3]}")

    def _on_330(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISACCOUNT
        if len(line.params) >= 3 and (seen := self._whois_part(line.params[1])) is not None:
            seen["account"] = line.params[2]

    def _on_307(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISREGNICK
        # "is a registered nick" / "has identified for this nick": the account is the nick.
        if len(line.params) >= 2 and (seen := self._whois_part(line.params[1])) is not None:
            seen.setdefault("account", line.params[1])

    def _on_318(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_ENDOFWHOIS
        if len(line.params) < 2:
            return
        for nick in line.params[1].split(","):
            folded = self._fold(nick)
            asked = self._whois_asked.pop(folded, None)
            if asked is None:
                continue  # not ours (an operator's manual WHOIS, say)
            answer = _WhoisAnswer(asked.seen.get("userhost") or "", asked.seen.get("account"))
            if answer.userhost:
                self._remember_whois(conn, nick, answer)
            if not asked.fut.done():
                asked.fut.set_result(answer)

    def _remember_whois(self, conn: IrcConnection, nick: str, answer: _WhoisAnswer) -> None:
        folded = self._fold(nick)
        now = time.monotonic()
        if len(self._whois_cache) >= WHOIS_CACHE_MAX:
            for old in [k for k, v in self._whois_cache.items() if now - v[2] >= WHOIS_TTL]:
                self._forget(old)
            while len(self._whois_cache) >= WHOIS_CACHE_MAX:
                self._forget(next(iter(self._whois_cache)))
        self._whois_cache[folded] = (answer.userhost, answer.account, now)
        if answer.account is not None and folded not in self._members:
            self._monitor(conn, folded)

    # -- MONITOR: seeing nicks go that share no channel with the bot ------------------------
    def _monitor(self, conn: IrcConnection, folded: str) -> None:
        """Watch `folded` (when the server offers MONITOR), so its kept answer may be used
        while the server says the same user@host holds it (730) and is forgotten when it
        goes (731)."""
        limit = getattr(conn.features, "monitor", None)
        if not limit or folded in self._monitored:
            return
        if not isinstance(limit, bool) and isinstance(limit, int) and len(self._monitored) >= limit:
            now = time.monotonic()
            for old in list(self._monitored):  # those whose answers ran out make room
                if old not in self._whois_cache or now - self._whois_cache[old][2] >= WHOIS_TTL:
                    self._forget(old)
            if len(self._monitored) >= limit:
                return
        self._monitored.add(folded)
        conn.send("MONITOR", "+", folded)

    def _on_730(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_MONONLINE
        for target in line.params[-1].split(","):
            folded = self._fold(nick_of(target))
            if folded in self._monitored:
                self._online[folded] = userhost_of(target)

    def _on_731(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_MONOFFLINE
        for target in line.params[-1].split(","):
            folded = self._fold(nick_of(target))
            self._online.pop(folded, None)
            self._changed_hands(folded)
            self._forget(folded)

    def _on_734(self, conn: IrcConnection, line: IrcLine) -> None:  # ERR_MONLISTFULL
        for target in line.param(2).split(","):
            folded = self._fold(target)
            self._monitored.discard(folded)
            self._online.pop(folded, None)

    def _on_nick(self, conn: IrcConnection, line: IrcLine) -> None:
        old, new = line.nick, line.param(0)
        if not old or not new:
            return
        if conn.is_me(old):
            self._renamed(conn, new)
            return
        self._changed_hands(old)
        self._changed_hands(new)
        self._forget(old)
        self._forget(new)
        chans = self._members.pop(self._fold(old), None)
        if chans:
            self._members[self._fold(new)] = chans
        account = self._accounts.pop(self._fold(old), None)
        if account is not None or "extended-join" in conn.caps:
            self._accounts[self._fold(new)] = account
        if self._fold(old) == self._fold(self.net.nick):
            self._regain(conn)  # whoever held our nick let it go

    def _on_quit(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            self._changed_hands(line.nick)
            self._lost_sight(self._fold(line.nick))
            if self._fold(line.nick) == self._fold(self.net.nick):
                self._regain(conn)

    def _sender(self, nick: str, account: str | None, *, unconfirmed: bool = False) -> Sender:
        if account:
            # Named by the account, not the nick: whoever holds the nick later is not them.
            return Sender(identity=f"irc:{self.net.network}/{account}", nick=nick,
                          display_name=account)
        # A nick without an account is a weaker identity of its own: it never acts as an
        # owner or release manager, and cannot be confused with the account of that name.
        return Sender(identity=f"irc:{self.net.network}/~{self._fold(nick)}", nick=nick,
                      authenticated=False, unconfirmed=unconfirmed)
