"""`/metrics` of a whole bot reading a real mailbox: each mail counted by what became of it,
the outbox empty once the acknowledgements went out."""

from __future__ import annotations

import pytest

from tests.scrape import scrape

from .conftest import barrier, mail
from .test_hostile import FORGED, IJC
from .test_replies import TRUSTED, WEEKLY, _weekly_sent

pytestmark = pytest.mark.integration


async def test_mails_read_from_a_real_mailbox_are_counted_by_outcome(bot_factory, mailbox,
                                                                    smtp_sink):
    async with bot_factory(seed=_weekly_sent, web={"listen": "127.0.0.1:0"}) as bot:
        assert bot.app.web is not None
        url = bot.app.web.url + "/metrics"
        await mailbox.deliver(mail(IJC, "!blocker 16\n", message_id="<acted@x>",
                                   in_reply_to=WEEKLY, Authentication_Results=TRUSTED))
        await mailbox.deliver(mail(IJC, "!blocker 17\n", message_id="<forged@x>",
                                   in_reply_to=WEEKLY, Authentication_Results=FORGED))
        await mailbox.deliver(mail("a@example.org", "Looks good to me.\n",
                                   message_id="<nothing@x>", in_reply_to=WEEKLY))
        # Every mail before it handled, counted and answered (the barrier is a `!whoami`).
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        samples = await scrape(url)

        def read(outcome: str) -> float:
            return samples[("todobot_mails_read_total", (("outcome", outcome),))]
        assert (read("acted"), read("forged"), read("nothing"), read("answered")) == (1, 1, 1, 1)
        assert read("dropped") == read("refused") == read("failed") == 0
        assert samples[("todobot_queue_length", (("queue", "outbox"), ("source", "mail")))] == 0
        assert samples[("todobot_transport_up", (("transport", "mail"),))] == 1
