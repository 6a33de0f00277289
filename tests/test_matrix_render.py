"""How a Reply looks on Matrix: plain body and HTML formatted_body (no server needed)."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from todobot.bot.matrix.render import render
from todobot.commands.messages import Reply, Span, item_ref, link, person


def test_heading_nested_bullets_ids_links_and_pills():
    reply = Reply()
    reply.heading("tools, blockers:")
    reply.bullet(item_ref(12), " libxl stable API (", person("Ian", "matrix:@ijc:xen.org"), ")")
    reply.bullet(item_ref(13), " async interfaces", level=1)
    reply.bullet(item_ref(14), " see ", link("https://bugs.xen.org/14", "bug 14"))
    reply.add("2 items")
    out = render(reply)
    assert out["msgtype"] == "m.notice"
    assert out["format"] == "org.matrix.custom.html"
    assert out["body"] == ("tools, blockers:\n"
                           "* #12 libxl stable API (Ian)\n"
                           "  * #13 async interfaces\n"
                           "* #14 see bug 14\n"
                           "2 items")
    assert out["formatted_body"] == (
        "<b>tools, blockers:</b>"
        "<ul><li><b>#12</b> libxl stable API ("
        '<a href="https://matrix.to/#/@ijc:xen.org">Ian</a>)'
        "<ul><li><b>#13</b> async interfaces</li></ul></li>"
        '<li><b>#14</b> see <a href="https://bugs.xen.org/14">bug 14</a></li></ul>'
        "2 items")


def test_plain_lines_are_separated_by_br():
    out = render(Reply().add("one").add("two"))
    assert out["body"] == "one\ntwo"
    assert out["formatted_body"] == "one<br>two"


def test_hostile_text_is_escaped():
    hostile = "<script>alert(1)</script> </code> javascript:alert(1) \"quoted\" & co"
    out = render(Reply().add("Added ", item_ref(3), f" (tools, nice to have): {hostile}"))
    html = out["formatted_body"]
    assert "<script" not in html and "</code>" not in html and "<a" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;/code&gt; javascript:alert(1)" in html
    assert "&quot;quoted&quot; &amp; co" in html
    assert out["body"].endswith(hostile)


def test_only_http_links_become_anchors():
    for bad in ("javascript:alert(1)", "data:text/html,<b>x</b>", "vbscript:x", "//evil",
                "https://x/\" onmouseover=\"alert(1)"):
        html = render(Reply().add(Span("click", link=bad)))["formatted_body"]
        assert "<a" not in html, bad
    html = render(Reply().add(Span("q", link='http://h/?a="b"&c')))["formatted_body"]
    assert html == '<a href="http://h/?a=&quot;b&quot;&amp;c">q</a>'


def test_mentions_without_matrix_identity_are_plain_names():
    html = render(Reply().add(person("Ian", "irc:oftc/ijc"), " and ", person("Jan")))["formatted_body"]
    assert html == "Ian and Jan"
    html = render(Reply().add(person("x", 'matrix:@a:b" onclick="y')))["formatted_body"]
    assert html == "x"


class _Text(HTMLParser):
    """The text a client would show, one entry per line (br, list items)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = [""]

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("br", "li", "ul"):
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("li", "ul"):
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        self.lines[-1] += data


def _visible(html: str) -> list[str]:
    p = _Text()
    p.feed(html)
    p.close()
    return [ln for ln in p.lines if ln.strip()]


def _plain_lines(body: str) -> list[str]:
    out = []
    for ln in body.split("\n"):
        ln = ln.lstrip(" ")
        ln = ln[2:] if ln.startswith("* ") else ln
        if ln.strip():
            out.append(ln)
    return out


_titles = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@given(st.lists(st.tuples(_titles, st.sampled_from(["text", "heading", "bullet"]),
                          st.integers(0, 2), st.booleans(), st.integers(1, 999)),
                min_size=1, max_size=6))
def test_formatted_body_shows_the_same_text_as_body(lines):
    reply = Reply()
    for title, kind, level, with_link, item in lines:
        parts = [item_ref(item), " ", title]
        if with_link:
            parts.append(link(f"https://example.org/{title}", title))
        reply.add(*parts, kind=kind, level=level if kind == "bullet" else 0)
    out = render(reply)
    assert _visible(out["formatted_body"]) == _plain_lines(out["body"])


# -- answers over several events ------------------------------------------------------------------
def _long_list(n: int, title_chars: int) -> Reply:
    reply = Reply(items=tuple(range(1, n + 1)))
    reply.heading("Open items for 4.2:")
    for i in range(1, n + 1):
        reply.bullet(item_ref(i), " " + "<x&y> " * (title_chars // 6))
        reply.bullet(item_ref(1000 + i), " a sub-item", level=1)
        if i % 10 == 0:
            reply.heading(f"area {i}:")
    return reply


def test_a_long_answer_is_split_between_items_under_the_limit():
    from todobot.bot.matrix.render import MAX_EVENT_BYTES, content_bytes, split_reply
    reply = _long_list(55, 1900)
    parts = split_reply(reply)
    assert len(parts) > 5
    for part in parts:
        out = render(part)
        assert content_bytes(out) <= MAX_EVENT_BYTES
        _well_formed(out["formatted_body"])
        assert part.lines[0].kind != "bullet" or part.lines[0].level == 0  # sub-items stay put
        assert part.lines[-1].kind != "heading"  # a heading goes with what follows it
        named = {s.item for ln in part.lines for s in ln.spans if s.item is not None}
        assert set(part.items) == named & set(reply.items)
    assert [ln for p in parts for ln in p.lines] == reply.lines  # nothing lost, same order


def test_a_short_answer_stays_one_event_and_a_huge_line_is_cut():
    from todobot.bot.matrix.render import MAX_EVENT_BYTES, content_bytes, split_reply
    small = _long_list(3, 60)
    assert split_reply(small) == [small]
    huge = Reply().add("note: " + "é<" * 40_000)
    parts = split_reply(huge)
    assert len(parts) > 1
    assert "".join(ln.plain for p in parts for ln in p.lines) == huge.plain
    for part in parts:
        out = render(part)
        assert content_bytes(out) <= MAX_EVENT_BYTES


def _well_formed(html_text: str) -> None:
    class Check(HTMLParser):
        stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag != "br":
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack.pop() == tag, html_text[:200]

    c = Check()
    c.stack = []
    c.feed(html_text)
    assert c.stack == []
