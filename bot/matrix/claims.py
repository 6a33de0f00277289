"""What a casual claim means ("I can take this one"): the items the message it replies to
named (the bot's own answers as recorded when sent, anyone else's by the `#id`s people saw,
after the sender's own latest edit), in a thread what the bot named last there, else what the
bot named last in the room, and nothing once someone else named an item since: then the
person is asked which.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from typing import Any

from nio import MegolmEvent, RoomGetEventResponse
from nio.api import RelationshipType

from ...commands import claim_intent
from ...commands.messages import Message
from .errors import TRANSIENT
from .render import shown_text, strip_reply_fallback

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix

MAX_THREADS = 1000  # threads (and rooms) whose last named items we remember
MAX_EDITS = 50  # edits of a replied-to message looked at for its latest text
_ITEM_ID = re.compile(r"(?<![\w#])#(\d{1,12})\b")
# What a claim becomes when its plain body and its HTML disagree: "this one", with the items
# either named as the candidates (so the person is asked which).
THIS_ONE = "I can take this one"


def item_ids(body: str) -> tuple[int, ...]:
    """The `#id`s a message names, each once, in order."""
    return tuple(dict.fromkeys(int(m) for m in _ITEM_ID.findall(body)))


def named_in(content: dict[str, Any]) -> tuple[int, ...]:
    """The `#id`s a message names as people saw it: its plain body's when its HTML shows the
    same ones (or it has none); when the two disagree, all of them if that makes several
    (the person is asked which), else none (the person is asked for the id)."""
    body = content.get("body")
    plain = item_ids(strip_reply_fallback(body)) if isinstance(body, str) else ()
    if not plain and "#" not in str(content.get("formatted_body", "")):
        return ()  # (most messages: no HTML to parse)
    shown = shown_text(content)
    if shown is None or item_ids(shown) == plain:
        return plain
    both = tuple(dict.fromkeys(plain + item_ids(shown)))
    return both if len(both) > 1 else ()


class Claims:
    """Claims read by MatrixTransport (transport.py holds the state)."""

    async def _read_claim(self, msg: Message, who: str, content: dict[str, Any],
                          reply_to: str | None) -> Message:
        """A claim as people saw it (its plain body and the HTML a client showed must agree, else
        the person is asked which); "this one" bound to what the replied-to message, the
        thread or the room named last. A message that is neither a claim nor a command is
        noted for the items it names (`who` named them)."""
        assert self.dispatcher is not None
        room_id, thread = msg.room, msg.thread
        said = msg.text.strip()
        intent = claim_intent(said) if len(said) <= 200 else None
        shown = shown_text(content)  # what an HTML client showed: that is what was meant
        seen = intent if shown is None else claim_intent(shown) if len(shown) <= 200 else None
        if intent != seen:  # a claim in one form only, or of another item: ask which
            ids = tuple(dict.fromkeys(i.item_id for i in (intent, seen)
                                      if i is not None and i.item_id is not None))
            msg = replace(msg, text=THIS_ONE, refers_to=ids if len(ids) > 1 else ())
        elif intent is not None and intent.item_id is None:
            if reply_to or thread:
                msg = replace(msg, refers_to=await self._referred(room_id, reply_to, thread))
            elif self._room_named.get(room_id, ("",))[0]:
                msg = replace(msg, refers_to=())  # someone else named an item since we did
        elif not thread and not said.startswith(
                self.dispatcher.settings_for(self.name, room_id).prefix):
            self._note_named(room_id, who, named_in(content))
        return msg

    def _note_named(self, room_id: str, who: str, items: tuple[int, ...]) -> None:
        """`who` ("" for the bot) named `items` last in the room. Without a reply, "this one"
        means what the bot named last, and nothing once someone else named an item since:
        the person is asked which."""
        if not items:
            return
        self._room_named.pop(room_id, None)
        if len(self._room_named) >= MAX_THREADS:
            del self._room_named[next(iter(self._room_named))]
        self._room_named[room_id] = (who, items)

    def _note_answered(self, room_id: str, thread: str | None, items: tuple[int, ...]) -> None:
        """The bot sent an answer naming `items`: in a thread, what "this one" means there
        next; in the main timeline, what it means in the room."""
        if not thread:
            self._note_named(room_id, "", items)
        if thread and items:
            key = (room_id, thread)
            self._thread_named.pop(key, None)
            if len(self._thread_named) >= MAX_THREADS:
                del self._thread_named[next(iter(self._thread_named))]
            self._thread_named[key] = items

    async def _referred(self, room_id: str, reply_to: str | None,
                        thread: str | None) -> tuple[int, ...]:
        """The items a reply or thread message may mean: those the replied-to message named;
        in a thread, those the bot named last in it, else those its root named."""
        if reply_to:
            return await self._named_by(room_id, reply_to)
        assert thread is not None
        return self._thread_named.get((room_id, thread)) or await self._named_by(room_id, thread)

    async def _named_by(self, room_id: str, event_id: str) -> tuple[int, ...]:
        """Items an event of this room names: the bot's own answers as recorded when sent,
        anyone else's by the `#id`s in it. Nothing for an event of another room (the server
        does not find it here) or one older than `reply_claim_max_age`."""
        client = self.client
        assert client is not None
        resp = await client.room_get_event(room_id, event_id)
        if not isinstance(resp, RoomGetEventResponse):  # (any failure: the person is asked)
            log.info("matrix: %s is not an event of %s (%s)", event_id, room_id,
                     getattr(resp, "status_code", resp))
            return ()
        ev = resp.event
        if time.time() - getattr(ev, "server_timestamp", 0) / 1000 > self.mcfg.reply_claim_max_age:
            return ()
        if getattr(ev, "sender", None) == client.user_id:
            if self.repo is None:
                return ()
            async with self.repo.session("matrix", write=False) as s:
                return await s.sent_items(self.name, event_id)
        content = await self._latest_content(room_id, ev)
        return named_in(content) if content is not None else ()

    async def _latest_content(self, room_id: str, ev: Any) -> dict[str, Any] | None:
        """An event's content as people see it now: the `m.new_content` of its latest edit by
        its own sender, else its own content; None when the edits cannot be read."""
        client = self.client
        assert client is not None
        source = getattr(ev, "source", None) or {}
        content = source.get("content")
        if not isinstance(content, dict):
            return None
        latest: tuple[int, str, dict[str, Any]] | None = None
        seen = 0
        try:
            async for edit in client.room_get_event_relations(
                    room_id, ev.event_id, RelationshipType.replacement, limit=MAX_EDITS):
                seen += 1
                if isinstance(edit, MegolmEvent) and client.olm is not None:
                    edit = client.decrypt_event(edit)
                new = ((getattr(edit, "source", None) or {}).get("content") or {}).get(
                    "m.new_content")
                if getattr(edit, "sender", None) == ev.sender and isinstance(new, dict):
                    key = (getattr(edit, "server_timestamp", 0), edit.event_id, new)
                    if latest is None or key[:2] > latest[:2]:
                        latest = key
                if seen >= MAX_EDITS:
                    break
        except TRANSIENT:
            raise
        except Exception as exc:  # (an error response, an edit we cannot decrypt)
            log.info("matrix: cannot read the edits of %s in %s (%s)", ev.event_id, room_id,
                     exc or type(exc).__name__)
            return None
        return latest[2] if latest is not None else content
