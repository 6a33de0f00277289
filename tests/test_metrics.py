"""`/metrics` (the Prometheus text format, counted by the dispatcher) and systemd's
notifications (READY=1, WATCHDOG=1, STOPPING=1 over NOTIFY_SOCKET)."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp

from tests.scrape import Samples, samples
from todobot.bot import systemd
from todobot.bot.app import App
from todobot.bot.config import Config, parse_config
from todobot.bot.transport import Transport
from todobot.bot.web import StatusServer


class Fake(Transport):
    def __init__(self, name: str, why: str | None = None) -> None:
        self.name, self.why, self.started = name, why, False
        self.on_start = lambda: None

    async def start(self, dispatcher) -> None:
        self.on_start()
        self.started = True

    async def stop(self) -> None:
        pass

    async def post(self, room, reply) -> None:
        pass

    def health(self) -> str | None:
        return self.why


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_count_commands_by_outcome_time_them_and_say_which_transport_serves(chat):
    irc, matrix = Fake("irc:oftc"), Fake("matrix", "not synced yet")
    server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0"}),
                          metrics=chat.dispatcher.metrics, transports=lambda: [irc, matrix])
    await server.start()
    try:
        status, kind, body = await _get(server.url + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
        before = samples(body)
        assert before[("todobot_reply_seconds_count", ())] == 0
        assert before[("todobot_transport_up", (("transport", "irc:oftc"),))] == 1
        assert before[("todobot_transport_up", (("transport", "matrix"),))] == 0

        assert (await chat.say("!claim 1")).startswith("#1")
        await chat.say("!help")
        await chat.say("!nosuch")
        await chat.say("!release new 9.9", nick="mallory")  # not a release manager

        async def broken(*args, **kwargs):
            raise RuntimeError("disk on fire")
        chat.dispatcher._context = broken
        assert (await chat.say("!blockers")).startswith("internal error, logged as ")
        matrix.why = None

        after = samples((await _get(server.url + "/metrics"))[2])
        def commands(name: str, outcome: str) -> float:
            return after[("todobot_commands_total", (("command", name), ("outcome", outcome)))]
        assert commands("claim", "changed") == 1
        assert commands("help", "info") == 1
        assert commands("unknown", "refused") == 1  # one label for every typo
        assert commands("release", "refused") == 1
        assert commands("blockers", "error") == 1
        assert after[("todobot_errors_total", ())] == 1
        assert after[("todobot_reply_seconds_count", ())] == 5
        assert after[("todobot_reply_seconds_bucket", (("le", "+Inf"),))] == 5
        assert after[("todobot_reply_seconds_sum", ())] > 0
        assert after[("todobot_transport_up", (("transport", "matrix"),))] == 1
    finally:
        await server.stop()


async def test_metrics_and_healthz_can_each_be_turned_off(chat):
    for switch, off, on in (({"metrics": False}, "/metrics", "/healthz"),
                            ({"healthz": False}, "/healthz", "/metrics")):
        server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0", **switch}))
        await server.start()
        try:
            assert (await _get(server.url + off))[0] == 404
            assert (await _get(server.url + on))[0] == 200
        finally:
            await server.stop()


async def test_each_server_reports_its_own_counts(tmp_path):
    """A registry per server, not prometheus_client's process-wide one: two bots in one
    process (the tests) never see, or collide with, each other's counters."""
    from todobot.bot.metrics import Metrics
    first, second = Metrics(), Metrics()
    first.command("help", "info", 0.001)
    servers = [StatusServer(None, Config(web={"listen": "127.0.0.1:0"}), metrics=m)  # type: ignore[arg-type]
               for m in (first, second)]
    for server in servers:
        await server.start()
    try:
        seen = [samples((await _get(s.url + "/metrics"))[2]) for s in servers]
        key = ("todobot_commands_total", (("command", "help"), ("outcome", "info")))
        assert seen[0][key] == 1 and key not in seen[1]
    finally:
        for server in servers:
            await server.stop()


async def test_transports_of_one_name_are_one_series_up_only_while_all_serve(tmp_path):
    """Two mailing lists are two transports named `mail`: one sample each, or Prometheus
    refuses the whole scrape."""
    lists = [Fake("mail"), Fake("mail", "not logged in")]
    server = StatusServer(None, Config(web={"listen": "127.0.0.1:0"}),  # type: ignore[arg-type]
                          transports=lambda: lists)
    await server.start()
    try:
        body = (await _get(server.url + "/metrics"))[2]
        assert body.count('todobot_transport_up{transport="mail"}') == 1
        assert samples(body)[("todobot_transport_up", (("transport", "mail"),))] == 0
        lists[1].why = None
        assert samples((await _get(server.url + "/metrics"))[2])[
            ("todobot_transport_up", (("transport", "mail"),))] == 1
    finally:
        await server.stop()


def test_the_config_turns_them_off_with_a_boolean():
    web = parse_config({"web": {"metrics": False}}).web
    assert web is not None and web.metrics is False and web.healthz is True


# -- systemd -------------------------------------------------------------------------------------

async def _next(sock: socket.socket) -> str:
    """The next datagram; the generous limit only turns a missing one into a failure rather
    than a hang."""
    return (await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 60)).decode()


async def test_the_app_tells_systemd_ready_then_pings_the_watchdog_then_stopping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path: a unix socket's name has ~100 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("notify.sock")
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        irc = Fake("irc:oftc")
        early: list[bytes] = []

        def peek() -> None:  # a datagram sent is queued at once: anything here came too early
            try:
                early.append(sock.recv(4096, socket.MSG_PEEK))
            except BlockingIOError:
                pass
        irc.on_start = peek
        app = App(parse_config({"database": str(tmp_path / "n.sqlite3")}), transports=[irc],
                  serve=False)
        running = asyncio.create_task(app.run())
        try:
            assert await _next(sock) == "READY=1"
            assert irc.started and early == []  # ready once the transports have started
            assert await _next(sock) == "WATCHDOG=1"
            assert await _next(sock) == "WATCHDOG=1"  # and again, from the running loop
            app.request_stop()
            while (state := await _next(sock)) == "WATCHDOG=1":
                pass
            assert state == "STOPPING=1"
            await running
        finally:
            app.request_stop()
            await asyncio.gather(running, return_exceptions=True)


async def test_notify_reaches_an_abstract_socket_and_does_nothing_without_one(monkeypatch):
    name = f"todobot-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert await _next(sock) == "READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert systemd.notify("READY=1") is False


def test_the_watchdog_runs_at_half_the_interval_systemd_gives_and_only_for_this_process(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd.watchdog_interval() == 30
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert systemd.watchdog_interval() is None


# -- digests, mails and queues ---------------------------------------------------------------------

async def _scrape(server: StatusServer) -> Samples:
    status, _, body = await _get(server.url + "/metrics")
    assert status == 200
    return samples(body)


async def test_a_posted_digest_is_counted_by_transport_and_room(tmp_path):
    from tests.test_schedule import _world, utc
    from todobot.bot.scheduler import DigestScheduler
    config = Config(digest={"every": "monday 09:00", "timezone": "Europe/London"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1, 12), ["#xen"])
    server = StatusServer(repo, Config(web={"listen": "127.0.0.1:0"}), metrics=disp.metrics,
                          transports=lambda: [tr])
    await server.start()
    try:
        sched = DigestScheduler(repo, config, disp, [tr], clock=clock, rescan=None)
        await sched.tick()  # the room is seen: nothing due yet
        key = ("todobot_digests_sent_total", (("room", "#xen"), ("transport", "irc:sim")))
        assert key not in await _scrape(server)
        clock.now = utc(2024, 5, 6, 8, 1).timestamp()
        await sched.tick()
        assert len(tr.posts) == 1
        assert (await _scrape(server))[key] == 1
        await sched.tick()  # the slot is taken: not posted, not counted again
        assert (await _scrape(server))[key] == 1
    finally:
        await server.stop()
        await db.close()


async def test_mails_read_are_counted_by_what_became_of_them(tmp_path):
    from tests.test_mail_transport import (FORGED_IAN, IJC, LIST, SERV, TRUSTED_IAN, WEEKLY,
                                           FakeSmtp, mail)
    from tests.harness import Chat
    from todobot.bot.mail import MailTransport
    entry = {"list": LIST, "from": "todobot <todobot@example.org>", "release": "4.2",
             "authserv_id": SERV, "smtp": {"host": "127.0.0.1", "port": 25, "starttls": False}}
    chat = await Chat.open(tmp_path / "todo.sqlite3", admins=["mail:ian.campbell@citrix.com"],
                           default_release="4.2", mail=[entry])
    async with chat.repo.session("test") as s:
        rel = await s.create_release("4.2")
        await s.add_item(rel, area="tools", severity="nice", title="item 1")
        await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")
    transport = MailTransport(chat.config.mail[0], chat.config, retry_base=0.0)
    smtp = FakeSmtp()
    transport._send = smtp
    await transport.start(chat.dispatcher)
    server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0"}),
                          metrics=chat.dispatcher.metrics, transports=lambda: [transport])
    await server.start()

    def read(samples, outcome: str) -> float:
        return samples[("todobot_mails_read_total", (("outcome", outcome),))]
    try:
        before = await _scrape(server)
        assert {read(before, o) for o in ("acted", "nothing", "forged", "duplicate")} == {0}
        assert before[("todobot_queue_length", (("queue", "outbox"), ("source", "mail")))] == 0
        deliveries = [
            (mail(IJC, "!blocker 1\n", message_id="<real@x>", Authentication_Results=TRUSTED_IAN),
             "acted"),
            (mail(IJC, "!blocker 1\n", message_id="<forged@x>", Authentication_Results=FORGED_IAN),
             "forged"),
            (mail("a@example.org", "Thanks, looks good.\n", message_id="<chat@x>"), "nothing"),
            (mail("b@example.org", "!todo\n", message_id="<ask@x>"), "answered"),
            (mail("c@example.org", "!release new 9.9\n", message_id="<no@x>"), "refused"),
            (mail("a@example.org", "Thanks again.\n", message_id="<chat@x>"), "duplicate"),
            (mail("d@example.org", "hi\n", message_id="<auto@x>", Auto_Submitted="auto-replied"),
             "dropped"),
        ]
        for raw, outcome in deliveries:
            was = read(await _scrape(server), outcome)
            assert await transport.handle_raw(raw)
            assert read(await _scrape(server), outcome) == was + 1, outcome
        # An acknowledgement the server does not take waits in the outbox.
        while transport._tasks:
            await asyncio.gather(*list(transport._tasks), return_exceptions=True)
        import aiosmtplib
        smtp.fail = aiosmtplib.SMTPServerDisconnected("gone")
        assert await transport.handle_raw(mail("e@example.org", "!todo\n", message_id="<w@x>"))
        while transport._tasks:
            await asyncio.gather(*list(transport._tasks), return_exceptions=True)
        outbox = ("todobot_queue_length", (("queue", "outbox"), ("source", "mail")))
        assert (await _scrape(server))[outbox] == 1
        # And a weekly mail whose first attempt failed, waiting for its retry.
        from todobot.commands.messages import text
        transport.retry_base = 3600.0  # the retry waits (cancelled at stop)
        await transport.post(LIST, text("weekly"))
        assert (await _scrape(server))[outbox] == 2
    finally:
        await server.stop()
        await transport.stop()
        await chat.close()


async def test_irc_lines_waiting_for_the_rate_limit_are_a_queue_length(tmp_path):
    import time

    from tests.test_irc_transport import WAIT, FakeServer, network, registered
    from todobot.bot.irc import IrcTransport
    from todobot.commands.messages import Reply
    irc_server = FakeServer()
    await irc_server.start()
    net = network(irc_server.port)
    t = IrcTransport(net, Config(irc=[net]))
    server = StatusServer(None, Config(web={"listen": "127.0.0.1:0"}),  # type: ignore[arg-type]
                          transports=lambda: [t])
    await server.start()
    key = ("todobot_queue_length", (("queue", "output"), ("source", "irc:testnet")))
    try:
        assert (await _scrape(server))[key] == 0  # not connected: nothing waits
        from tests.test_irc_transport import FakeDispatcher
        await t.start(FakeDispatcher())  # type: ignore[arg-type]
        await registered(irc_server)
        await asyncio.wait_for(t.ready.wait(), WAIT)
        bucket = t._conn.bucket
        frozen = bucket.clock()
        bucket.clock = lambda: frozen  # no token comes while the clock stands still
        bucket._refill()
        bucket.tokens = 0
        reply = Reply()
        for n in range(5):
            reply.add(f"digest line {n}")
        try:
            await t.post("#test", reply)
            assert (await _scrape(server))[key] == 5
        finally:
            bucket.clock = time.monotonic  # the lines may go: the stop does not wait for them
    finally:
        await server.stop()
        await t.stop()
        await irc_server.close()


async def test_change_notices_waiting_for_their_window_are_a_queue_length(chat):
    from todobot.bot.notify import Notifier
    from todobot.commands.watch import Notice
    notifier = Notifier([], window=3600)
    server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0"}),
                          metrics=chat.dispatcher.metrics, transports=tuple,
                          queues=lambda: [notifier])
    await server.start()
    key = ("todobot_queue_length", (("queue", "batches"), ("source", "notify")))
    try:
        assert (await _scrape(server))[key] == 0
        notifier.add([Notice(1, ("irc:oftc/ijc",), "#1 claimed"),
                      Notice(2, ("matrix:@k:x",), "#1 claimed"),
                      Notice(1, ("irc:oftc/ijc",), "#2 closed")])
        assert (await _scrape(server))[key] == 2  # two people waiting
        await notifier.flush()  # nobody reachable: dropped, nothing waits
        assert (await _scrape(server))[key] == 0
    finally:
        await server.stop()


async def test_the_app_reports_its_transports_and_notifiers_queues(tmp_path):
    irc = Fake("irc:oftc")
    app = App(parse_config({"database": str(tmp_path / "q.sqlite3"),
                            "web": {"listen": "127.0.0.1:0"}}), transports=[irc])
    await app.initialize()
    try:
        await app.start()
        got = samples((await _get(app.web.url + "/metrics"))[2])
        assert got[("todobot_queue_length", (("queue", "batches"), ("source", "notify")))] == 0
        assert got[("todobot_transport_up", (("transport", "irc:oftc"),))] == 1
    finally:
        await app.stop()
