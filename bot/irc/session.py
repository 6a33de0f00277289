"""The IRC session: one connection kept alive, and what the bot does for itself on it.

A supervisor task keeps one connection (`connection.py`) alive: connect, register, hand
the session its lines until the link dies, then reconnect with jittered backoff (a session
that lasted resets the backoff; a refused certificate or configuration gives up). On each
session the bot logs in to NickServ when configured (the channel joins wait for services to
answer, bounded), learns its own prefix (USERHOST, JOIN, CHGHOST, 396) for the line budget,
and takes back its configured nick when whoever held it lets it go.

Services come and go (a server restart, a netsplit, services restarted): whenever they say we
are not logged in (901, a NickServ notice asking us to identify, a new `sasl` offer) and on
a periodic check, the bot logs in again (SASL after registration where the server offers it,
else NickServ IDENTIFY), warning once a minute while it has no account; once logged in it
retries refused channels (+r) and its nick at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from ..config import ConfigError
from .connection import CertificateRefused, IrcConnection, IrcLine, LinkClosed, nick_of, reconnect_backoff
from .text import strip_formatting

log = logging.getLogger(__name__)

STABLE_SESSION = 60.0  # a session that lasted this long resets the reconnect backoff
IDENTIFY_WAIT = 10.0  # channel joins wait this long for services to confirm our IDENTIFY
# What NickServ says after IDENTIFY (Anope, Atheme, OFTC's services), in a NOTICE to us.
_NS_OK = re.compile(r"(?i)password accepted|you are now (?:recognized|identified|logged in)"
                    r"|now identified|successfully identified")
_NS_FAILED = re.compile(r"(?i)password incorrect|invalid password|incorrect password"
                        r"|isn't registered|is not registered|not a registered|denied|failed")

# NickServ asking us to identify: we are not (or no longer) logged in to this nick's account.
_NS_ASK = re.compile(r"(?i)please identify|is registered and protected|you are not identified"
                     r"|/msg nickserv identify|type /msg nickserv")
LOGIN_CHECK = 30.0  # seconds between checks that the bot is still logged in to its account
LOGIN_WARN_EVERY = 60.0  # seconds between warnings while it is not


class SessionMixin:
    """Connecting, reconnecting, the bot's own login and nick (a part of `IrcTransport`)."""

    regain_interval = 60.0  # seconds between attempts to take back our configured nick
    login_clock = staticmethod(time.monotonic)  # replaced in tests

    # -- the connection supervisor ---------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = reconnect_backoff()
        while not self._stopping:
            registered_at: float | None = None
            conn = IrcConnection(self.net, self._bucket, self._password)
            self._conn = conn
            self.attempts += 1
            try:
                await conn.open()
                log.info("%s: connected to %s:%d", self.name, self.net.host, self.net.port)
                async with asyncio.timeout(self.net.ping_interval + self.net.ping_timeout):
                    welcome = await conn.register()
                registered_at = time.monotonic()
                self.failed = None
                await self._session(conn, welcome)
            except asyncio.CancelledError:
                raise
            except CertificateRefused as exc:
                self.failed = str(exc)
                if not self.sessions:
                    # Never verified: a configuration to fix, not a server to knock on.
                    log.error("%s: giving up on this network: %s", self.name, exc)
                    break
                # It verified before: a certificate changed mid-run (a renewal gone wrong, or
                # someone in between). Never connect unverified; keep trying with backoff.
                log.error("%s: refusing to connect: %s; trying again with backoff", self.name, exc)
            except ConfigError as exc:
                # Do not knock forever: this network stays down until the configuration is
                # fixed.
                self.failed = str(exc)
                log.error("%s: giving up on this network: %s", self.name, exc)
                break
            except (OSError, LinkClosed, asyncio.TimeoutError, EOFError) as exc:
                log.warning("%s: connection lost: %s", self.name, str(exc) or type(exc).__name__)
            except Exception:
                log.exception("%s: connection failed", self.name)
            finally:
                self.ready.clear()
                self.joined.clear()
                await conn.close()
                if self._conn is conn:
                    self._conn = None
            if self._stopping:
                break
            if registered_at is not None and time.monotonic() - registered_at >= STABLE_SESSION:
                backoff.reset()
            delay = backoff.next()
            log.info("%s: reconnecting in %.1fs", self.name, delay)
            await asyncio.sleep(delay)

    async def _session(self, conn: IrcConnection, welcome: IrcLine) -> None:
        self.sessions += 1
        self._new_session()
        self._identify_state = ""
        if conn.account:
            log.info("%s: logged in as %s (SASL)", self.name, conn.account)
        elif self._nickserv_password:
            self._identify(conn)
        if conn.account is None and "sasl" not in conn.caps:
            conn.relogin_sasl()  # services linked while we registered: SASL now
        regain = asyncio.create_task(self._regain_loop(conn), name=f"{self.name}:regain")
        login = asyncio.create_task(self._login_loop(conn), name=f"{self.name}:login")
        try:
            while True:
                line = await conn.read()
                self._on_line(conn, line)
        finally:
            regain.cancel()
            login.cancel()
            for task in list(self._timers):
                task.cancel()
            self._timers.clear()
            self._session_ended()

    def _later(self, delay: float, fn, *args) -> None:
        """Run `fn(*args)` after `delay` seconds, unless the session ends first."""
        async def run() -> None:
            await asyncio.sleep(delay)
            fn(*args)
        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # -- the bot's own NickServ login ------------------------------------------------------
    def _identify(self, conn: IrcConnection) -> None:
        account = self.net.nickserv_account or self.net.nick
        log.info("%s: identifying to NickServ as %s", self.name, account)
        conn.send("PRIVMSG", "NickServ", f"IDENTIFY {account} {self._nickserv_password}",
                  secret=True, urgent=True)
        self._identify_state = "waiting"
        self._later(IDENTIFY_WAIT, self._identify_timeout, conn)

    def _identify_timeout(self, conn: IrcConnection) -> None:
        if self._identify_state == "waiting":
            log.warning("%s: NickServ did not confirm the login within %.0fs; joining anyway",
                        self.name, IDENTIFY_WAIT)
            self._identified(conn, None)

    def _identified(self, conn: IrcConnection, account: str | None) -> None:
        """Services answered (or the wait ran out): the joins held back go out now."""
        if self._identify_state != "waiting":
            return
        self._identify_state = "done"
        if account:
            conn.account = account
            log.info("%s: logged in as %s (NickServ)", self.name, account)
        if conn.motd_done:
            self._join_all(conn)

    # -- staying logged in ---------------------------------------------------------------
    def _wants_account(self) -> bool:
        net = self.net
        return bool(net.sasl_account or net.nickserv_password_env
                    or net.sasl_mechanism == "EXTERNAL")

    async def _login_loop(self, conn: IrcConnection) -> None:
        while True:
            await asyncio.sleep(LOGIN_CHECK)
            self._check_login(conn)

    def _check_login(self, conn: IrcConnection) -> None:
        """The periodic check: still no account, so say so (once a minute) and log in."""
        if conn.account is not None or not self._wants_account():
            return
        now = self.login_clock()
        if self._login_warned is None or now - self._login_warned >= LOGIN_WARN_EVERY:
            self._login_warned = now
            log.warning("%s: connected but not logged in to its account; trying to log in",
                        self.name)
        self._relogin(conn)

    def _relogin(self, conn: IrcConnection) -> None:
        """Log in again: SASL where the server offers it now, else NickServ IDENTIFY. The
        channel joins are not held back (they went out when the session began)."""
        if conn.relogin_sasl():
            return
        if self._nickserv_password and self._identify_state != "waiting":
            account = self.net.nickserv_account or self.net.nick
            log.info("%s: identifying to NickServ as %s again", self.name, account)
            conn.send("PRIVMSG", "NickServ", f"IDENTIFY {account} {self._nickserv_password}",
                      secret=True, urgent=True)
            self._identify_state = "again"

    def _logged_in(self, conn: IrcConnection, account: str) -> None:
        """We have our account (again): refused channels and our nick are worth a retry now."""
        was = conn.account
        conn.account = account
        if self._identify_state == "again":
            self._identify_state = "done"
        if was == account:
            return
        log.info("%s: logged in as %s", self.name, account)
        self._login_warned = None
        self._regain(conn)
        for folded, name in self._channels.items():
            if folded not in self.joined and folded in self._ban_backoff:
                self._ban_backoff.pop(folded, None)
                conn.send("JOIN", name)

    def _logged_out(self, conn: IrcConnection, why: str) -> None:
        if conn.account is not None:
            log.warning("%s: no longer logged in as %s (%s); logging in again", self.name,
                        conn.account, why)
        conn.account = None
        self._relogin(conn)

    async def _regain_loop(self, conn: IrcConnection) -> None:
        while True:
            await asyncio.sleep(self.regain_interval)
            self._regain(conn)

    def _regain(self, conn: IrcConnection) -> None:
        if not conn.is_me(self.net.nick):
            self._last_regain = time.monotonic()
            conn.send("NICK", self.net.nick)

    def _renamed(self, conn: IrcConnection, new: str) -> None:
        """The server changed our own nick (a regain, or a forced change)."""
        conn.nick = new
        if conn.source:
            conn.source = new + conn.source[len(nick_of(conn.source)):]
        log.info("%s: now known as %s", self.name, new)

    # -- what the server tells us about ourselves ------------------------------------------
    def _on_376(self, conn: IrcConnection, line: IrcLine) -> None:  # end of MOTD
        if conn.motd_done:
            return  # a MOTD asked for later
        conn.motd_done = True
        if conn.source is None:
            conn.send("USERHOST", conn.nick)
        self._join_all(conn)

    def _on_900(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_LOGGEDIN
        account = line.param(2) or None
        if self._identify_state == "waiting":
            self._identified(conn, account)
        if account:
            self._logged_in(conn, account)

    def _on_901(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_LOGGEDOUT
        self._logged_out(conn, "the server says so")

    def _on_notice(self, conn: IrcConnection, line: IrcLine) -> None:
        if (line.nick or "").casefold() != "nickserv" or not conn.is_me(line.param(0)):
            return
        text = strip_formatting(line.param(1))
        account = self.net.nickserv_account or self.net.nick
        if self._identify_state == "again":
            if _NS_OK.search(text):
                self._logged_in(conn, account)
            elif _NS_FAILED.search(text):
                self._identify_state = "done"
                log.warning("%s: NickServ login as %s failed: %s", self.name, account, text[:200])
            return
        if self._identify_state != "waiting":
            # Only on a nick that is ours: on an alternate someone else registered, NickServ
            # asks for their password, and we may well be logged in.
            ours = conn.is_me(self.net.nick) or conn.is_me(account)
            if ours and _NS_ASK.search(text) and self._wants_account():
                self._logged_out(conn, "NickServ asks to identify")
            return
        if _NS_FAILED.search(text):
            log.warning("%s: NickServ login as %s failed: %s; carrying on without an account",
                        self.name, account, text[:200])
            self._identified(conn, None)
        elif _NS_OK.search(text):
            self._identified(conn, account)

    def _on_mode(self, conn: IrcConnection, line: IrcLine) -> None:
        # Services mark an identified user +r: as good as their NOTICE.
        if (self._identify_state == "waiting" and conn.is_me(line.param(0))
                and "r" in line.param(1).split("-")[0]):
            self._identified(conn, self.net.nickserv_account or self.net.nick)

    _on_422 = _on_376  # no MOTD

    def _on_302(self, conn: IrcConnection, line: IrcLine) -> None:  # USERHOST
        for entry in line.params[-1].split():
            name, _, rest = entry.partition("=")
            if conn.is_me(name.rstrip("*")) and "@" in rest:
                conn.source = f"{conn.nick}!{rest[1:]}"

    def _on_396(self, conn: IrcConnection, line: IrcLine) -> None:  # our displayed host
        if conn.source and len(line.params) >= 2:
            conn.source = conn.source.split("@", 1)[0] + "@" + line.params[1]

    def _on_chghost(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.nick) and len(line.params) >= 2:
            conn.source = f"{conn.nick}!{line.params[0]}@{line.params[1]}"
