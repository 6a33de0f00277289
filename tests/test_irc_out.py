"""The IRC output queues on their own: which line goes next, what is dropped."""

from __future__ import annotations

import itertools

from todobot.bot.irc.output import ASKS_IN_ROW, BACKLOG, OutputQueues, Requester, dropped_text


def person(nick: str) -> Requester:
    return Requester(f"net/{nick}", nick, "PRIVMSG", "#chan")


def drain(q: OutputQueues) -> list[bytes]:
    out = []
    while (picked := q.pop()) is not None:
        out.append(picked[1])
    return out


def queues() -> OutputQueues:
    ticks = itertools.count()
    return OutputQueues(clock=lambda: float(next(ticks)))


def test_urgent_lines_first_then_requesters_in_turn():
    q = queues()
    q.answer(person("ann"), [b"a1", b"a2", b"a3"])
    q.answer(person("bea"), [b"b1", b"b2"])
    q.put(b"PONG x", urgent=True)
    assert drain(q) == [b"PONG x", b"b1", b"a1", b"b2", b"a2", b"a3"]
    assert len(q) == 0


def test_a_newcomer_goes_before_longer_backlogs_and_served_counts_reset_when_idle():
    q = queues()
    for nick in ("ann", "bea", "cid"):
        q.answer(person(nick), [nick.encode() + b"1", nick.encode() + b"2"])
    assert q.pop()[1] == b"ann1"
    q.answer(person("eve"), [b"eve1"])
    assert q.pop()[1] == b"eve1"
    drain(q)
    q.answer(person("ann"), [b"ann3"])  # a new busy period: ann is not behind for before
    q.answer(person("bea"), [b"bea3"])
    assert drain(q) == [b"ann3", b"bea3"]


def test_answers_past_the_backlog_are_counted_and_told_once():
    q = queues()
    ann = person("ann")
    accepted = [q.answer(ann, [b"x", b"y"]) for _ in range(8)]
    assert accepted == [True] * (BACKLOG // 2 + 1) + [False] * (8 - BACKLOG // 2 - 1)
    while (picked := q.pop()) is not None:
        told = q.drained(picked[0])
    assert told == (ann, 8 - BACKLOG // 2 - 1)
    assert q.drained("net/ann") is None
    assert dropped_text(3, "alice") == "3 more answers for alice dropped: ask again with a narrower query"
    assert dropped_text(1, "alice").startswith("1 more answer for alice")


def test_questions_go_before_answers_in_turn_per_asker():
    q = queues()
    q.answer(person("ann"), [b"a1"])
    for i in range(3):
        q.put(b"WHOIS clone%d" % i, key="whois:clone@evil", ask=True)
    q.put(b"WHOIS ijc", key="whois:ijc@home", ask=True)
    q.put(b"PONG x", urgent=True)
    assert drain(q) == [b"PONG x", b"WHOIS ijc", b"WHOIS clone0", b"WHOIS clone1", b"a1",
                        b"WHOIS clone2"]
    q.put(b"WHOIS clone3", key="whois:clone@evil", ask=True)
    assert q.pop()[1] == b"WHOIS clone3"
    q.put(b"WHOIS clone4", key="whois:clone@evil", ask=True)
    q.put(b"WHOIS clone5", key="whois:clone@evil", ask=True)
    assert q.pop()[1] == b"WHOIS clone4"
    q.put(b"WHOIS ijc", key="whois:ijc@home", ask=True)  # served less than the clones
    assert q.pop()[1] == b"WHOIS ijc"


def test_questions_from_ever_new_hosts_never_starve_the_answers():
    """A stream of hosts, each asking once, keeps a question waiting at every turn: the
    answers still go out, at least one for every ASKS_IN_ROW questions."""
    q = queues()
    q.answer(person("ann"), [b"a1", b"a2"])
    sent = []
    for i in range(3 * (ASKS_IN_ROW + 1)):
        q.put(b"WHOIS h%d" % i, key=f"whois:x@host{i}", ask=True)
        sent.append(q.pop()[1])
    assert sent.index(b"a1") == ASKS_IN_ROW and b"a2" in sent
    # With no answer waiting, questions go on in a row.
    assert all(line.startswith(b"WHOIS") for line in drain(q))


def test_a_question_withdrawn_is_not_sent():
    q = queues()
    q.put(b"WHOIS a", key="whois:a@h", ask=True)
    q.put(b"WHOIS b", key="whois:a@h", ask=True)
    assert q.withdraw("whois:a@h", b"WHOIS a") and len(q) == 1
    assert not q.withdraw("whois:a@h", b"WHOIS a")
    assert drain(q) == [b"WHOIS b"]
    assert not q.withdraw("whois:a@h", b"WHOIS b")  # sent already
    assert len(q) == 0
