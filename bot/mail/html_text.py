"""An HTML-only mail as the plain text a reply reader expects: `<blockquote>` content as `> `
quoted lines (nested quotes nest), `<br>`, `<div>` and table rows as line breaks, `<p>` and
headings as paragraphs (a blank line after), list items as `* ` bullets (indented per level).

BeautifulSoup (html.parser underneath) builds the tree from whatever the mail client wrote,
unclosed tags and all; this module only walks it, without recursion (a hostile mail may nest
thousands deep).
"""

from __future__ import annotations

from bs4 import (BeautifulSoup, Comment, Declaration, Doctype, NavigableString,
                 ProcessingInstruction, Tag)

MAX_HTML = 500_000  # characters of HTML read (a reply's is far less); the rest is not
_SKIP = {"script", "style", "head", "title", "template", "noscript", "object", "iframe"}
_LINE = {"br", "div", "tr", "hr", "section", "article", "header", "footer", "table", "ul", "ol",
         "dl", "dt", "dd", "center", "address", "form", "fieldset", "figure"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre"}
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.words: list[str] = []
        self.depth = 0  # blockquotes open
        self.lists: list[str] = []  # "ul" / "ol" open, innermost last
        self.lead = ""  # the bullet of the list item whose first line is being written
        self.pre = 0

    def text(self, s: str) -> None:
        if self.pre:
            first, *rest = s.split("\n")
            self.words.append(first)
            for part in rest:
                self.end(keep_empty=True)
                self.words.append(part)
        elif s.split():
            if s[:1].isspace() and self.words and self.words[-1] != " ":
                self.words.append(" ")
            self.words.append(" ".join(s.split()))
            if s[-1:].isspace():
                self.words.append(" ")
        elif s and self.words and self.words[-1] != " ":
            # Whitespace alone between inline elements ("<b>1</b> <b>2</b>") is the space a
            # reader sees: without it "!claim 1 2" would read as "!claim 12".
            self.words.append(" ")

    def end(self, keep_empty: bool = False) -> None:
        """Ends the line being written (an empty one only when asked: `<br>`)."""
        line = "".join(self.words).strip() if not self.pre else "".join(self.words).rstrip()
        self.words = []
        if line or keep_empty:
            if self.lead:
                line, self.lead = self.lead + line, ""
            self.lines.append(("> " * self.depth) + line if line else ">" * self.depth)

    def blank(self) -> None:
        self.end()
        if self.lines and self.lines[-1].strip("> ") != "":
            self.lines.append(">" * self.depth)


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html[:MAX_HTML], "html.parser")
    w = _Writer()
    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, _NOT_TEXT):
                w.text(str(node))
            continue
        assert isinstance(node, Tag)  # bs4's nodes are strings or tags, the soup a tag too
        name = (node.name or "").lower()
        if name in _SKIP:
            continue
        if not leaving:
            _enter(w, name)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
        else:
            _leave(w, name)
    w.end()
    while w.lines and not w.lines[-1].strip("> "):
        w.lines.pop()
    return "\n".join(w.lines) + "\n" if w.lines else ""


def _enter(w: _Writer, name: str) -> None:
    if name == "blockquote":
        w.blank()
        w.depth += 1
    elif name == "br":
        w.end(keep_empty=True)
    elif name in ("ul", "ol"):
        w.end()
        w.lists.append(name)
    elif name == "li":
        w.end()
        w.lead = "  " * max(len(w.lists) - 1, 0) + "* "
    elif name == "pre":
        w.blank()
        w.pre += 1
    elif name in _LINE or name in _PARAGRAPH:
        w.end()


def _leave(w: _Writer, name: str) -> None:
    if name == "blockquote":
        w.end()
        w.depth = max(w.depth - 1, 0)
        w.blank()
    elif name in ("ul", "ol"):
        w.end()
        if w.lists:
            w.lists.pop()
        if not w.lists:
            w.blank()
    elif name == "li":
        w.end()
        w.lead = ""
    elif name == "pre":
        w.end()
        w.pre = max(w.pre - 1, 0)
        w.blank()
    elif name in _PARAGRAPH:
        w.blank()
    elif name in _LINE and name != "br":
        w.end()
