"""The one Reply -> HTML renderer: the chat form (Matrix formatted_body) and the document form
(the HTML digest) share the escaping, the link rule and the list nesting."""

from __future__ import annotations

from todobot.bot.matrix import render as matrix_render
from todobot.commands import render_html, render_markdown
from todobot.commands.messages import Reply, item_ref, link, person
from todobot.storage import formats


def _reply() -> Reply:
    reply = Reply()
    reply.heading("tools, <blockers>:")
    reply.bullet(item_ref(12), " see https://bugs.example.org/12 (", person("Ian", "matrix:@ijc:x.org"), ")")
    reply.bullet(item_ref(13), " sub", level=1)
    reply.bullet(item_ref(14), " ", link("https://a.org/", "a"))
    reply.add("2\nitems")
    return reply


def test_matrix_uses_the_one_renderer_with_pills():
    reply = _reply()
    assert matrix_render.render_html(reply) == render_html.reply_html(
        reply, mention_href=matrix_render.pill_url)


def test_chat_and_document_forms_nest_lists_the_same_way():
    reply = _reply()
    chat = render_html.reply_html(reply, mention_href=matrix_render.pill_url)
    doc = render_html.reply_html(reply, document=True)
    for html in (chat, doc):
        assert html.count("<ul>") == html.count("</ul>") == 2
        assert html.count("<li") == html.count("</li>") == 3
        assert "&lt;blockers&gt;" in html and "<blockers>" not in html
        assert "2 items" in html  # a line break in text never splits the line
    # the chat form: bold heading, ids bold, pills from the callback, text URLs left to the client
    assert chat.startswith("<b>tools, &lt;blockers&gt;:</b><ul><li><b>#12</b>")
    assert '<a href="https://matrix.to/#/@ijc:x.org">Ian</a>' in chat
    assert "https://bugs.example.org/12 (" in chat and 'href="https://bugs.example.org/12"' not in chat
    assert "\n" not in chat and "rel=" not in chat
    assert "Ian" in render_html.reply_html(reply) and "matrix.to" not in render_html.reply_html(reply)
    # the document form: h3/p blocks, ids linked to their anchors, URLs in text linked, nofollow
    assert doc.startswith("<h3>tools, &lt;blockers&gt;:</h3>") and "<p>2 items</p>" in doc
    assert '<b><a class="id" href="#item-12">#12</a></b>' in doc
    assert ('<a href="https://bugs.example.org/12" rel="nofollow noopener">'
            "https://bugs.example.org/12</a>") in doc
    assert 'id="item-12"' not in doc
    anchored = render_html.reply_html(reply, document=True, anchors=True, item_base="/release/4.2/item")
    assert '<li id="item-12">' in anchored and 'href="/release/4.2/item/12"' in anchored


def test_one_markdown_escaper():
    assert render_markdown.md_escape is formats.md_escape
    assert formats.md_escape("a*b_[c]<d>#|`\\") == "a\\*b\\_\\[c\\]\\<d\\>\\#\\|\\`\\\\"
    assert render_markdown.span_md(item_ref(3)) == "**\\#3**"
