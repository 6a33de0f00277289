"""IRC wire text: rendering, neutralising, splitting to the byte budget, throttling, casefolding.

Property tests run a modest number of examples by default; `HYPOTHESIS_PROFILE=nightly`
runs 100,000 per property.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todobot.bot.irc.text import (
    BOLD,
    ITEM_SEP,
    MAX_LINE,
    budget_for,
    casefold,
    clean,
    pessimistic_source,
    render,
    split_text,
    split_text_with_joins,
    strip_formatting,
    wire_lines,
)
from todobot.commands.messages import Reply, Span, bold, item_ref, link, person
from todobot.bot.ratelimit import TokenBucket

SOURCE = "todobot!bot@host.example"


# -- clean / strip_formatting --------------------------------------------------------------------

def test_clean_turns_line_breaks_into_one_space_and_drops_nul():
    assert clean("a\r\nb\n\n\rc\rd\0e") == "a b c de"
    assert clean("a\r\0\nb") == "a b"
    assert clean("tab\tand \x02bold\x02 kept") == "tab\tand \x02bold\x02 kept"


@pytest.mark.parametrize("raw, plain", [
    ("\x02bold\x02", "bold"),
    ("\x034red", "red"),
    ("\x0304,12red on blue", "red on blue"),
    ("\x03,4x", ",4x"),  # no foreground: the comma is text, as clients show it
    ("\x0312,x", ",x"),  # comma without a background digit stays
    ("\x03123", "3"),  # at most two digits
    ("\x03plain", "plain"),
    ("\x04FF00AAhex", "hex"),
    ("\x04ff00aa,00ff00hex", "hex"),
    ("\x04FF00zz", "FF00zz"),  # not six hex digits: only the code goes
    ("a\x0fb", "ab"),
    ("\x11mono\x11", "mono"),
    ("\x16rev\x16", "rev"),
    ("\x1ditalic\x1d", "italic"),
    ("\x1estrike\x1e", "strike"),
    ("\x1funder\x1f", "under"),
    ("\x03٣arabic digit", "٣arabic digit"),  # only ASCII digits are colour numbers
])
def test_strip_formatting(raw, plain):
    assert strip_formatting(raw) == plain


# -- render -------------------------------------------------------------------------------------

def test_render_heading_is_entirely_bold():
    assert render(Reply().heading("Release ", bold("1.2"), " blockers")) == [
        "\x02Release 1.2 blockers\x02"]


def test_render_bullets_at_two_levels():
    reply = Reply().bullet("top").bullet("sub", level=1)
    assert render(reply) == ["• top", "  • sub"]


def test_render_bold_item_id():
    reply = Reply().add(item_ref(12), " fix the build")
    assert render(reply) == ["\x02#12\x02 fix the build"]


def test_render_adjacent_bold_spans_merge():
    assert render(Reply().add(item_ref(1), bold(" and "), item_ref(2))) == ["\x02#1 and #2\x02"]


def test_render_links_and_mentions():
    reply = (Reply().add("see ", link("https://ex.org/x", "the docs"))
             .add(link("https://ex.org/y"))
             .add("ask ", person("ijc", "irc:oftc/ijc")))
    assert render(reply) == ["see the docs <https://ex.org/x>", "https://ex.org/y", "ask ijc"]


def test_render_empty_reply_and_empty_line():
    assert render(Reply()) == []
    assert render(Reply().add()) == [""]
    assert render(Reply().heading()) == [""]


def test_render_strips_formatting_from_user_text():
    reply = Reply().add(item_ref(3), " ", Span("\x02\x03,4evil\x0f title"))
    assert render(reply) == ["\x02#3\x02 ,4evil title"]


def test_render_neutralises_ctcp_and_controls():
    assert render(Reply().add("\x01VERSION\x01\tx\x07")) == ["\ufffdVERSION\ufffd x\ufffd"]


def test_hostile_line_breaks_never_reach_the_wire():
    reply = Reply().add(item_ref(5), " ", Span("\r\nJOIN #evil\r\nPRIVMSG x :hi"))
    [line] = render(reply)
    assert "\r" not in line and "\n" not in line
    assert wire_lines("PRIVMSG", "#rel", line, SOURCE) == [
        b"PRIVMSG #rel :\x02#5\x02  JOIN #evil PRIVMSG x :hi\r\n"]
    # Even text that skipped render is cleaned on the way out.
    assert wire_lines("PRIVMSG", "#rel", "a\r\nJOIN #evil", SOURCE) == [
        b"PRIVMSG #rel :a JOIN #evil\r\n"]


# -- wire_lines ---------------------------------------------------------------------------------

def test_wire_lines_short_privmsg_and_notice():
    assert wire_lines("PRIVMSG", "#rel", "hello \x02#1\x02", SOURCE) == [
        b"PRIVMSG #rel :hello \x02#1\x02\r\n"]
    assert wire_lines("NOTICE", "ijc", "caf\u00e9", SOURCE) == [b"NOTICE ijc :caf\xc3\xa9\r\n"]


def test_wire_lines_empty_text_sends_nothing():
    assert wire_lines("PRIVMSG", "#rel", "", SOURCE) == []
    assert wire_lines("PRIVMSG", "#rel", "\0", SOURCE) == []


def test_budget_counts_the_whole_relayed_line():
    # ":todobot!bot@host.example PRIVMSG #rel :" + "\r\n"
    assert budget_for("PRIVMSG", "#rel", SOURCE) == 512 - len(f":{SOURCE} PRIVMSG #rel :\r\n")
    assert budget_for("PRIVMSG", "#rél", SOURCE) == budget_for("PRIVMSG", "#rel", SOURCE) - 1


def test_long_line_splits_at_spaces():
    words = [f"word{i:03d}" for i in range(120)]
    lines = wire_lines("PRIVMSG", "#rel", " ".join(words), SOURCE)
    assert len(lines) > 1
    texts = [ln[len(b"PRIVMSG #rel :"):-2].decode() for ln in lines]
    for ln, text in zip(lines, texts):
        assert ln.startswith(b"PRIVMSG #rel :") and ln.endswith(b"\r\n")
        assert len(f":{SOURCE} ".encode() + ln) <= MAX_LINE
        assert not text.startswith(" ") and not text.endswith(" ")
    assert " ".join(texts).split(" ") == words


def test_longer_host_gives_smaller_pieces():
    text = " ".join(["abcdefghi"] * 200)
    short = wire_lines("PRIVMSG", "#rel", text, "bot!u@" + "h" * 10)
    long = wire_lines("PRIVMSG", "#rel", text, "bot!u@" + "h" * 60)
    assert max(map(len, long)) < max(map(len, short))
    assert len(f":bot!u@{'h' * 60} ".encode()) + max(map(len, long)) <= MAX_LINE


def test_pessimistic_source():
    source = pessimistic_source("todobot", "bot")
    assert source == "todobot!~bot@" + "x" * 63
    assert budget_for("PRIVMSG", "#r", source) < budget_for("PRIVMSG", "#r", SOURCE)


@pytest.mark.parametrize("target", ["", "#a b", "#a\r", "#a\nJOIN", "#a\0", ":x"])
def test_bad_target_is_refused(target):
    with pytest.raises(ValueError):
        wire_lines("PRIVMSG", target, "hi", SOURCE)


@pytest.mark.parametrize("command", ["", "PRIV MSG", "PRIVMSG\r\n", "12"])
def test_bad_command_is_refused(command):
    with pytest.raises(ValueError):
        wire_lines(command, "#a", "hi", SOURCE)


def test_lone_surrogates_are_replaced():
    assert wire_lines("PRIVMSG", "#a", "x\udcffy", SOURCE) == [b"PRIVMSG #a :x?y\r\n"]


# -- split_text examples ------------------------------------------------------------------------

def test_split_short_and_empty():
    assert split_text("", 16) == [""]
    assert split_text("fits exactly 16!", 16) == ["fits exactly 16!"]


def test_split_at_last_space_consuming_runs():
    assert split_text("aaaa bbbb cccc dddd", 10) == ["aaaa bbbb", "cccc dddd"]
    pieces = split_text_with_joins("aaaa    bbbb", 6)
    assert [(p.text, p.joiner) for p in pieces] == [("aaaa", "    "), ("bbbb", "")]


def test_split_hard_splits_long_words():
    assert split_text("x" * 40, 16) == ["x" * 16, "x" * 16, "x" * 8]


def test_split_keeps_bold_on_every_piece():
    assert split_text("\x02aaaa bbbb cccc\x02 dd", 11) == [
        "\x02aaaa bbbb\x02", "\x02cccc\x02 dd"]


def test_split_keeps_clusters_whole():
    thumbs = "\U0001F44D\U0001F3FD"  # thumbs up, medium skin tone: 8 bytes
    assert split_text(thumbs * 5, 16) == [thumbs * 2, thumbs * 2, thumbs]
    accented = "e\u0301"  # 3 bytes
    assert split_text(accented * 6, 16) == [accented * 5, accented]
    flags = "\U0001F1EB\U0001F1F7" * 3  # three flags, 8 bytes each
    assert split_text(flags, 20) == ["\U0001F1EB\U0001F1F7" * 2, "\U0001F1EB\U0001F1F7"]
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # 18 bytes: over budget, cut anyway
    assert "".join(split_text(family, 16)) == family


def test_split_refuses_a_budget_that_cannot_progress():
    with pytest.raises(ValueError):
        split_text("x" * 20, 5)


# -- properties ---------------------------------------------------------------------------------

FRAGMENTS = [
    " ", "  ", "     ", BOLD, "word", "release", "x" * 40,
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",  # ZWJ family
    "\U0001F44D\U0001F3FD", "\U0001F44B\U0001F3FF",  # skin tones
    "\u2764\ufe0f", "1\ufe0f\u20e3",  # variation selector, keycap
    "\U0001F1EB\U0001F1F7", "\U0001F1EF",  # a flag, a lone regional indicator
    "e\u0301", "a\u0301\u0323\u0308", "\u0915\u094d\u0937",  # combining marks, Devanagari
    "漢字テスト", "한국어", "\u1100\u1161\u11a8",  # CJK, Hangul syllables and jamo
    "\u200fשלום\u200e", "مرحبا", "\u202eevil\u202c",  # RTL marks and text, bidi override
]
text_strategy = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
        st.text(st.sampled_from("ab \x02é漢\U0001F600\u0301"), min_size=20, max_size=80),
    ),
    max_size=30,
).map("".join)


def bold_states(text: str) -> list[tuple[str, bool]]:
    """Each non-bold-code character with whether it displays bold (line read on its own)."""
    states, on = [], False
    for ch in text:
        if ch == BOLD:
            on = not on
        else:
            states.append((ch, on))
    return states


@settings(deadline=None)
@given(text=text_strategy, budget=st.integers(min_value=16, max_value=120))
def test_split_text_properties(text, budget):
    pieces = split_text_with_joins(text, budget)
    assert [p.text for p in pieces] == split_text(text, budget)
    assert split_text_with_joins(text, budget) == pieces  # deterministic
    rebuilt = ""
    displayed: list[tuple[str, bool]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        assert len(piece.text.encode("utf-8")) <= budget
        assert piece.text or text == ""
        # Bookkeeping: reopen bold if it was open at the split, close it if open at the end.
        reopen = BOLD if rebuilt.count(BOLD) % 2 else ""
        close = BOLD if not last and (rebuilt + piece.content).count(BOLD) % 2 else ""
        assert piece.text == reopen + piece.content + close
        if piece.joiner:
            assert set(piece.joiner) == {" "} and not last
            assert not piece.content.endswith(" ")
            assert not pieces[index + 1].content.startswith(" ")
        else:
            assert piece.content or text == ""
        rebuilt += piece.content + piece.joiner
        displayed += bold_states(piece.text)
    assert rebuilt == text
    # Each piece, shown on its own, bolds exactly what the whole line bolds (spaces consumed
    # at splits aside).
    original = bold_states(text)
    consumed = sum(len(p.joiner) for p in pieces)
    assert len(displayed) == len(original) - consumed
    assert [s for s in displayed if s[0] != " "] == [s for s in original if s[0] != " "]


@settings(deadline=None)
@given(text=st.text(), target=st.sampled_from(["#rel", "ijc", "#a-very-long-channel-name" * 3]),
       host_len=st.integers(min_value=0, max_value=200),
       command=st.sampled_from(["PRIVMSG", "NOTICE"]))
def test_wire_lines_properties(text, target, host_len, command):
    source = "todobot!~bot@" + "h" * host_len
    lines = wire_lines(command, target, text, source)
    for line in lines:
        assert line.endswith(b"\r\n")
        body = line[:-2]
        assert b"\r" not in body and b"\n" not in body and b"\0" not in body
        assert len(b":" + source.encode() + b" " + line) <= MAX_LINE
        assert line.startswith(f"{command} {target} :".encode())
        line.decode("utf-8")  # strict: raises on invalid UTF-8
    assert bool(lines) == bool(clean(text))


# -- TokenBucket --------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_bursts_then_paces():
    clock = FakeClock()
    bucket = TokenBucket(burst=4, rate=1.0, clock=clock)
    for _ in range(4):
        assert bucket.delay() == 0
        bucket.take()
    assert bucket.delay() == pytest.approx(1.0)
    assert bucket.delay() == pytest.approx(1.0)  # delay() consumes nothing
    clock.now += 0.25
    assert bucket.delay() == pytest.approx(0.75)
    clock.now += 0.75
    assert bucket.delay() == 0
    bucket.take()
    assert bucket.delay() == pytest.approx(1.0)


def test_bucket_refill_is_capped_at_burst():
    clock = FakeClock()
    bucket = TokenBucket(burst=4, rate=1.0, clock=clock)
    for _ in range(4):
        bucket.take()
    clock.now += 3600
    for _ in range(4):
        assert bucket.delay() == 0
        bucket.take()
    assert bucket.delay() == pytest.approx(1.0)


def test_bucket_rate_and_debt():
    clock = FakeClock()
    bucket = TokenBucket(burst=1, rate=2.0, clock=clock)
    bucket.take()
    assert bucket.delay() == pytest.approx(0.5)
    bucket.take()  # sent anyway: the next line waits longer
    assert bucket.delay() == pytest.approx(1.0)


async def test_acquire_waits_without_blocking_the_loop():
    bucket = TokenBucket(burst=1, rate=20.0)
    await bucket.acquire()  # the burst token: immediate
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await asyncio.wait_for(bucket.acquire(), timeout=30)
    done.set()
    await task
    assert ticks > before  # the other task ran while acquire() waited
    assert bucket.tokens < 1  # and acquire() took the token it waited for


# -- casefold -----------------------------------------------------------------------------------

def test_casefold_ascii():
    assert casefold("Nick[]\\^~ÄB", "ascii") == "nick[]\\^~Äb"


def test_casefold_rfc1459():
    assert casefold("Nick[]\\^~ÄB") == "nick{}|~~Äb"
    assert casefold("#Rel[1]", "rfc1459") == casefold("#rel{1}", "rfc1459")


def test_casefold_strict_rfc1459():
    assert casefold("Nick[]\\^~", "strict-rfc1459") == "nick{}|^~"


def test_casefold_unknown_mapping_falls_back_to_rfc1459():
    assert casefold("A[^", "something-new") == "a{~"


# -- packed listings ----------------------------------------------------------------------------

async def _seed_reply(tmp_path, command: str):
    from tests.harness import Chat
    from todobot.bot.cli import seed_text
    from todobot.bot.mail_import import import_list
    from todobot.storage.layouts.xen42 import parse_mail

    db = tmp_path / "seed.sqlite3"
    await import_list(str(db), parse_mail(seed_text(), "4.2"), "4.2", actor="test")
    chat = await Chat.open(db, default_release="4.2")
    try:
        return await chat.reply(command)
    finally:
        await chat.close()


async def test_seed_blockers_pack_into_few_full_lines(tmp_path):
    reply = await _seed_reply(tmp_path, "!blockers")
    assert reply is not None
    source = pessimistic_source("todobot", "todobot")
    budget = budget_for("PRIVMSG", "#xen-devel", source)
    packed = render(reply, budget)
    wire = [w for t in packed for w in wire_lines("PRIVMSG", "#xen-devel", t, source)]
    assert len(wire) <= 3
    assert all(len(f":{source} ".encode()) + len(w) <= MAX_LINE for w in wire)
    text = " ".join(w.decode() for w in wire)
    for item_id in (1, 2, 4, 5, 8, 10):
        assert f"\x02#{item_id}\x02" in text
    assert "(sub: \x02#2\x02 Interfaces which may need to be async)" in text
    assert " · \x02#4\x02 xl compatibility with xm · " in text
    assert packed[1].startswith("\x02tools, blockers:\x02 \x02#1\x02 libxl stable API")


async def test_packed_todo_one_line_per_area_and_every_id(tmp_path):
    reply = await _seed_reply(tmp_path, "!todo")
    assert reply is not None
    budget = 400
    packed = render(reply, budget)
    heads = [p for p in packed if p.startswith(BOLD) and ", " in p.split(BOLD)[1]]
    assert len(heads) == 3  # tools blockers, hypervisor nice, tools nice
    assert not [p for p in packed if p.lstrip().startswith("•")]  # no bullet lines left
    assert len(packed) <= 7
    text = " ".join(packed)
    for item_id in reply.items:
        assert f"\x02#{item_id}\x02" in text
    # Lines are filled: only an entry longer than the budget makes a line longer.
    for p in packed:
        assert len(p.encode()) <= budget or ITEM_SEP not in p


def test_packing_without_budget_keeps_one_line_per_line():
    r = Reply().heading("tools, blockers:").bullet("a").bullet("b", level=1)
    assert render(r) == ["\x02tools, blockers:\x02", "• a", "  • b"]
    assert render(r, 400) == ["\x02tools, blockers:\x02 a (sub: b)"]


def test_packing_starts_a_new_line_when_full():
    r = Reply().heading("h:")
    for i in range(10):
        r.bullet(f"entry{i} " + "x" * 30)
    packed = render(r, 100)
    assert 3 < len(packed) < 10 and all(len(p.encode()) <= 100 for p in packed)
    assert packed[0].startswith("\x02h:\x02 entry0 ") and ITEM_SEP in packed[1]
    assert " · ".join(packed).count("entry") == 10
