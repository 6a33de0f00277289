"""IRC wire text: rendering replies, neutralising user text, splitting to the byte budget.

Pure functions (plus a small output throttle); the connection lives in `connection.py`.
Every outgoing line goes through `wire_lines`, which cleans the text (no CR, LF or NUL ever
reaches the wire) and splits it so that, once the server prefixes our `nick!user@host`,
receivers still get lines of at most 512 bytes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from ...commands.messages import Line, Reply, Span

MAX_LINE = 512  # bytes, including the trailing CRLF (RFC 1459); message tags are not counted
HOST_MAX = 63  # longest hostname label we assume when the server has not told us our host
BOLD = "\x02"
# Smallest budget that always makes progress: reopen bold + one 4-byte character + close bold.
MIN_BUDGET = 6

_CRLF_RUNS = re.compile(r"[\r\n]+")
_FORMATTING = re.compile(
    r"\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"  # colour: fg[,bg]; a bare ",n" is text, as clients show it
    r"|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"  # hex colour
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"  # bold, reset, monospace, reverse, italic, strike, underline
)
# Left in user text after formatting is stripped: other C0/C1 controls, notably \x01 (CTCP).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x80-\x9f]")
_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")


def clean(text: str) -> str:
    """The single choke point for outgoing text: each run of CR/LF becomes one space, NUL goes."""
    return _CRLF_RUNS.sub(" ", text.replace("\0", ""))


def strip_formatting(text: str) -> str:
    """Remove mIRC formatting codes (bold, colours, reset, italics, ...) from incoming text."""
    return _FORMATTING.sub("", text)


# -- rendering ----------------------------------------------------------------------------------

def _neutral(text: str) -> str:
    """User-supplied text made inert: no formatting of its own, no line breaks, no CTCP."""
    if _CONTROLS.search(text) is None:
        return text  # every change `_neutralised` makes starts at a control: most text has none
    return _neutralised(text)


def _neutralised(text: str) -> str:
    text = clean(strip_formatting(text))
    return _CONTROLS.sub(lambda m: " " if m.group() == "\t" else "\ufffd", text)


def _span_text(span: Span) -> str:
    label = _neutral(span.text)
    if span.link:
        url = _neutral(span.link)
        return f"{label} <{url}>" if label and label != url else url
    return label  # mentions are just the name: IRC highlights on the nick itself


def _render_body(line: Line) -> str:
    heading = line.kind == "heading"
    runs: list[list] = []  # [text, bold], adjacent runs of the same weight merged
    for span in line.spans:
        piece = _span_text(span)
        if not piece:
            continue
        weight = heading or span.bold or span.item is not None
        if runs and runs[-1][1] == weight:
            runs[-1][0] += piece
        else:
            runs.append([piece, weight])
    return "".join(f"{BOLD}{t}{BOLD}" if b else t for t, b in runs)


def _render_line(line: Line) -> str:
    return "  " * line.level + ("• " if line.kind == "bullet" else "") + _render_body(line)


ITEM_SEP = " · "
_SEP_BYTES = len(ITEM_SEP.encode())


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def _entries(bullets: list[Line]) -> list[str]:
    """Bullets as packed entries: each top-level bullet with its deeper ones in "(sub: …)"."""
    def walk(i: int, level: int) -> tuple[list[str], int]:
        out: list[str] = []
        while i < len(bullets) and bullets[i].level >= level:
            text = _render_body(bullets[i]).rstrip(":").rstrip()
            i += 1
            if i < len(bullets) and bullets[i].level > level:
                subs, i = walk(i, bullets[i].level)
                text += f" (sub: {ITEM_SEP.join(subs)})"
            out.append(text)
        return out, i

    entries, _ = walk(0, min(b.level for b in bullets))
    return entries


def _pack(head: str, entries: list[str], budget: int) -> list[str]:
    """`head` then the entries joined by ITEM_SEP, a new line whenever the next entry would
    pass `budget` bytes. An entry longer than a line goes alone (the splitter cuts it)."""
    lines: list[str] = []
    current = head
    used = _utf8_bytes(head)  # bytes of `current`, kept as it grows
    for entry in entries:
        size = _utf8_bytes(entry)
        if not current:
            current, used = entry, size
        elif used + _SEP_BYTES + size <= budget:
            joiner = " " if current is head else ITEM_SEP
            current += joiner + entry
            used += (1 if joiner == " " else _SEP_BYTES) + size
        else:
            lines.append(current)
            current, used = entry, size
    if current:
        lines.append(current)
    return lines


def render(reply: Reply, budget: int | None = None) -> list[str]:
    """IRC text lines for a reply (not yet cleaned or split to the byte budget).

    Without `budget`, one line per `Line`. With it, listings are packed as IRC users expect:
    a heading followed by bullets becomes one line per heading ("tools, blockers: #1 … · #4 …",
    sub-items in "(sub: …)"), each line filled up to `budget` bytes."""
    if budget is None:
        return [_render_line(line) for line in reply.lines]
    return list(render_lines(reply, budget))


def render_lines(reply: Reply, budget: int) -> Iterator[str]:
    """`render(reply, budget)` one line at a time: the first can be on its way while the rest
    are rendered."""
    lines = reply.lines
    i = 0
    while i < len(lines):
        line = lines[i]
        j = i + 1
        while j < len(lines) and lines[j].kind == "bullet":
            j += 1
        if line.kind == "heading" and j > i + 1:
            yield from _pack(_render_body(line), _entries(list(lines[i + 1:j])), budget)
            i = j
        else:
            yield _render_line(line)
            i += 1


# -- splitting ----------------------------------------------------------------------------------

class Piece(NamedTuple):
    text: str  # what goes on the wire: content plus any bold reopen/close bookkeeping
    content: str  # the slice of the input this piece carries
    joiner: str  # the spaces consumed after it ("" after a hard split and after the last piece)


def _utf8_len(ch: str) -> int:
    o = ord(ch)
    return 1 if o < 0x80 else 2 if o < 0x800 else 3 if o < 0x10000 else 4


def _is_ri(ch: str) -> bool:  # regional indicator: flags are pairs of these
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _is_boundary(text: str, j: int) -> bool:
    """Whether cutting between text[j-1] and text[j] keeps user-perceived characters whole.

    An approximation of grapheme clusters: combining marks, variation selectors, emoji
    modifiers and tags, ZWJ sequences, flag pairs and conjoining Hangul jamo stay together.
    """
    a, b = text[j - 1], text[j]
    ob = ord(b)
    if a == "\u200d" or b == "\u200d":
        return False
    if unicodedata.category(b) in ("Mn", "Mc", "Me"):  # includes variation selectors
        return False
    if 0x1F3FB <= ob <= 0x1F3FF or 0xE0020 <= ob <= 0xE007F:  # skin tones, emoji tags
        return False
    if 0x1160 <= ob <= 0x11FF or 0xD7B0 <= ob <= 0xD7FB:  # Hangul vowel/final jamo
        return False
    if 0x1100 <= ord(a) <= 0x115F and 0x1100 <= ob <= 0x115F:  # leading jamo run
        return False
    if _is_ri(a) and _is_ri(b):
        k = j - 1
        while k >= 0 and _is_ri(text[k]):
            k -= 1
        return (j - 1 - k) % 2 == 0  # even count before: b starts a new flag
    return True


def split_text_with_joins(text: str, budget: int) -> list[Piece]:
    """Split one line into pieces of at most `budget` UTF-8 bytes; see `split_text`."""
    if budget < MIN_BUDGET:
        raise ValueError(f"budget of {budget} bytes is too small to split text")
    if len(text.encode("utf-8", "surrogatepass")) <= budget:
        return [Piece(text, text, "")]  # fits whole: what `_pieces` finds, char by char
    return _pieces(text, budget)


def _pieces(text: str, budget: int) -> list[Piece]:
    n = len(text)
    nbytes = [0] * (n + 1)  # UTF-8 length of text[:j]
    bolds = [0] * (n + 1)  # number of \x02 in text[:j]; odd means bold is open at j
    for j, ch in enumerate(text):
        nbytes[j + 1] = nbytes[j] + _utf8_len(ch)
        bolds[j + 1] = bolds[j] + (ch == BOLD)
    run_end = list(range(n + 1))  # for a space at j: the index just past its run of spaces
    for j in range(n - 1, -1, -1):
        if text[j] == " ":
            run_end[j] = run_end[j + 1]

    pieces: list[Piece] = []
    i = 0
    while True:
        reopen = BOLD if bolds[i] % 2 else ""
        if len(reopen) + nbytes[n] - nbytes[i] <= budget:
            pieces.append(Piece(reopen + text[i:], text[i:], ""))
            return pieces
        space = safe = any_ = None
        visible = False  # content holds more than bold toggles
        for j in range(i + 1, n):
            used = len(reopen) + nbytes[j] - nbytes[i]
            if used > budget:
                break
            visible = visible or text[j - 1] != BOLD
            if used + bolds[j] % 2 > budget:  # no room to close the bold run here
                continue
            any_ = j
            if not visible:
                continue
            if _is_boundary(text, j):
                safe = j
            # A space run that ends before the text does: break there, consuming the run.
            if text[j] == " " and text[j - 1] != " " and run_end[j] < n:
                space = j
        if space is not None:
            end, nxt = space, run_end[space]
        else:
            end = safe if safe is not None else any_
            if end is None:  # unreachable with budget >= MIN_BUDGET
                raise ValueError("cannot split text within budget")
            nxt = end
        content = text[i:end]
        close = BOLD if bolds[end] % 2 else ""
        pieces.append(Piece(reopen + content + close, content, text[end:nxt]))
        i = nxt


def split_text(text: str, budget: int) -> list[str]:
    """Split one line of text into pieces of at most `budget` UTF-8 bytes each.

    Breaks after the last word that fits, consuming the run of spaces there; a word longer
    than the budget is cut, preferably between user-perceived characters. A bold run open at
    a split is closed at the end of the piece and reopened at the start of the next, so each
    line renders on its own; those bytes count against the budget. Other formatting codes are
    treated as ordinary characters. Empty text gives [""].
    """
    return [p.text for p in split_text_with_joins(text, budget)]


# -- the wire -----------------------------------------------------------------------------------

def pessimistic_source(nick: str, user: str) -> str:
    """Our prefix as others may see it when the server has not told us our host yet:
    the ident may gain a "~" and the host is assumed to be as long as a hostname label allows."""
    return f"{nick}!~{user}@{'x' * HOST_MAX}"


def budget_for(command: str, target: str, source: str) -> int:
    """Bytes left for the text of `:source COMMAND target :text\\r\\n` within MAX_LINE.

    `source` is our own `nick!user@host` as the server will prefix it when relaying. When the
    host is unknown, pass `pessimistic_source(nick, user)` so receivers never get a cut line.
    """
    overhead = len(f":{source} {command} {target} :\r\n".encode())
    return MAX_LINE - overhead


def wire_lines(command: str, target: str, text: str, source: str) -> list[bytes]:
    """`COMMAND target :piece\\r\\n` lines carrying `text`, cleaned and split to the budget.

    Text that is empty after cleaning gives no lines (servers refuse an empty PRIVMSG).
    A malformed command or target is a ValueError: a bad line is never sent.
    """
    if not _COMMAND.fullmatch(command):
        raise ValueError(f"bad IRC command {command!r}")
    if not target or target.startswith(":") or any(c in target for c in " \r\n\0"):
        raise ValueError(f"bad IRC target {target!r}")
    # Lone surrogates (from surrogateescape decoding) cannot be UTF-8: replace them.
    text = clean(text).encode("utf-8", "replace").decode("utf-8")
    if not text:
        return []
    head = f"{command} {target} :".encode()
    return [head + piece.encode() + b"\r\n"
            for piece in split_text(text, budget_for(command, target, source))]


# -- names --------------------------------------------------------------------------------------

_ASCII = {ord(c): ord(c) + 32 for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_STRICT = {**_ASCII, ord("["): ord("{"), ord("]"): ord("}"), ord("\\"): ord("|")}
_RFC1459 = {**_STRICT, ord("^"): ord("~")}
_CASEMAPS = {"ascii": _ASCII, "strict-rfc1459": _STRICT, "rfc1459": _RFC1459}


def casefold(name: str, casemapping: str = "rfc1459") -> str:
    """Fold a nick or channel name as the server's CASEMAPPING does, for comparisons.

    rfc1459 treats []\\^ as the upper case of {}|~; strict-rfc1459 leaves ^ and ~ alone;
    ascii folds A-Z only. Unknown mappings fall back to rfc1459, the common default.
    """
    return name.translate(_CASEMAPS.get(casemapping.lower(), _RFC1459))
