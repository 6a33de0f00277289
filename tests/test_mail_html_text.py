"""An HTML-only reply read as text (bot/mail/html_text.py): what a person saw is what is read,
preformatted lines kept as written, and what no mail client shows (scripts, styles, the head)
never read as a command."""

from __future__ import annotations

from todobot.bot.mail.html_text import html_to_text
from todobot.bot.mail.replies import parse_reply


def test_preformatted_lines_are_kept_line_by_line():
    text = html_to_text("<p>My commands:</p><pre>!claim 1\n  !blocker 2\n\nthanks</pre><p>Ian</p>")
    assert text == "My commands:\n\n!claim 1\n  !blocker 2\n\nthanks\n\nIan\n"


def test_words_split_by_markup_keep_their_spaces():
    assert html_to_text("<div>take <b>#1</b> <i>and</i>#2 please</div>") == "take #1 and#2 please\n"
    assert html_to_text("<p>a<span> b </span>c</p>") == "a b c\n"
    assert html_to_text("<p>a <b> </b> b</p>") == "a b\n"  # one space, however many nodes


def test_a_command_with_formatted_ids_acts_on_the_ids_the_person_saw():
    [action] = parse_reply(html_to_text("<p>!claim <b>1</b> <b>2</b></p>"))
    assert action.line == "!claim 1 2"  # not "!claim 12"


def test_what_a_mail_client_does_not_show_is_not_read():
    html = ("<html><head><title>!claim 1</title><style>p {}</style></head><body>"
            "<script>!blocker 2</script><noscript>!done 3</noscript>"
            "<!-- !claim 3 --><p>!claim 2</p></body></html>")
    assert html_to_text(html) == "!claim 2\n"
    assert [a.line for a in parse_reply(html_to_text(html))] == ["!claim 2"]


def test_unbalanced_closing_tags_do_not_unnest_below_zero():
    assert html_to_text("</blockquote></pre><blockquote>quoted</blockquote>after") == (
        "> quoted\n\nafter\n")
