"""Reading a read-only archive (inbox.py, `imap.archive`) against a scripted IMAP server: the
newest slice is chosen, a first start begins at the end, the mark of the last UID handled
waits behind a failed message, and a rebuilt archive (new UIDVALIDITY) starts at its end."""

from __future__ import annotations

import logging

from aioimaplib import Response

from todobot.bot.config import MailImap
from todobot.bot.mail.inbox import Inbox, newest_slice

GROUP = "org.example.lists.xen-devel"


def test_the_newest_slice_of_the_newsgroup_is_read():
    lines = [f'(\\HasNoChildren) "." {GROUP}.{n}'.encode() for n in (0, 2, 10, 1)]
    lines += [b'(\\HasNoChildren) "." org.example.lists.xen-devel-announce.99',
              f'(\\HasNoChildren) "." {GROUP}.evil.12'.encode(), b"List done"]
    assert newest_slice(GROUP, lines) == f"{GROUP}.10"
    assert newest_slice(GROUP, [b"List done"]) == GROUP


class FakeArchive:
    """UID SEARCH and UID FETCH over `mail` (uid -> raw), as public-inbox-imapd answers."""

    def __init__(self, mail: dict[int, bytes]) -> None:
        self.mail = mail
        self.fetched: list[int] = []

    async def uid_search(self, criteria: str, charset=None) -> Response:
        low = int(criteria.removeprefix("UID ").split(":")[0])
        uids = [u for u in sorted(self.mail) if u >= low] or sorted(self.mail)[-1:]  # "N:*"
        return Response("OK", [" ".join(map(str, uids)).encode(), b"Search done"])

    async def uid(self, command: str, uid: str, what: str) -> Response:
        assert command == "fetch", "nothing but FETCH in a read-only archive"
        assert len(self.fetched) < 50, f"fetching in circles: {self.fetched[-5:]}"
        self.fetched.append(int(uid))
        return Response("OK", [f"1 FETCH (UID {uid} BODY[] {{3}}".encode(),
                               bytearray(self.mail[int(uid)]), b")", b"Fetch done"])


class Marks:
    def __init__(self, kept=None) -> None:
        self.kept = kept

    async def load(self):
        return self.kept

    async def save(self, uidvalidity: int, last: int) -> None:
        self.kept = (uidvalidity, last)


async def _call(awaitable):
    return await awaitable


def inbox(marks: Marks, fails: set[bytes]) -> tuple[Inbox, list[bytes]]:
    seen: list[bytes] = []

    async def handle(raw: bytes) -> bool:
        seen.append(raw)
        return raw not in fails
    return Inbox(MailImap(folder=GROUP, archive=True), password=None, handle=handle,
                 where="test", marks=marks), seen


def selected(validity: int, uidnext: int) -> Response:
    return Response("OK", [b"OK [PERMANENTFLAGS ()] Read-only mailbox",
                           f"OK [UIDNEXT {uidnext}]".encode(),
                           f"OK [UIDVALIDITY {validity}]".encode(), b"[READ-ONLY] done"])


async def test_a_first_start_reads_only_what_arrives_after_it():
    marks = Marks()
    box, seen = inbox(marks, set())
    await box._begin(selected(7, uidnext=4))
    assert marks.kept == (7, 3)
    archive = FakeArchive({1: b"old1", 2: b"old2", 3: b"old3"})
    await box._drain_archive(archive, _call)
    assert seen == [] and archive.fetched == []  # "4:*" names 3, which is not after the mark
    archive.mail[4] = b"new"
    await box._drain_archive(archive, _call)
    assert seen == [b"new"] and marks.kept == (7, 4)


async def test_the_mark_waits_behind_a_failed_message_which_a_restart_reads_again():
    marks = Marks((7, 4))
    archive = FakeArchive({n: f"m{n}".encode() for n in range(1, 8)})
    box, seen = inbox(marks, fails={b"m6"})
    await box._begin(selected(7, uidnext=8))
    await box._drain_archive(archive, _call)
    assert seen == [b"m5", b"m6", b"m7"]
    assert marks.kept == (7, 5)  # not past 6, which failed
    await box._drain_archive(archive, _call)  # the next IDLE notice: nothing fetched again
    assert archive.fetched == [5, 6, 7]
    restarted, seen_again = inbox(marks, fails=set())
    await restarted._begin(selected(7, uidnext=8))
    await restarted._drain_archive(archive, _call)
    assert seen_again == [b"m6", b"m7"] and marks.kept == (7, 7)


async def test_a_rebuilt_archive_is_read_from_its_end(caplog):
    caplog.set_level(logging.WARNING, logger="todobot.bot.mail.inbox")
    marks = Marks((7, 400))
    box, seen = inbox(marks, set())
    await box._begin(selected(8, uidnext=12))
    assert marks.kept == (8, 11)
    assert any("UIDVALIDITY changed" in r.getMessage() for r in caplog.records)
