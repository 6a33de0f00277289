"""The `mail:` config: the issue's keys exactly, strict, and secrets from the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from todobot.bot.config import ConfigError, parse_config

ENTRY = {
    "list": "xen-devel@lists.example.org",
    "from": "todobot <todobot@example.org>",
    "release": "4.2",
    "subject": "Xen {release} TODO / Release Plan",
    "authserv_id": "mx.example.org",
    "smtp": {"host": "smtp.example.org", "port": 587, "starttls": True, "tls": False,
             "username": "todobot@example.org", "password_env": "TODOBOT_SMTP_PASSWORD"},
    "imap": {"host": "imap.example.org", "port": 993, "tls": True,
             "username": "todobot@example.org", "password_env": "TODOBOT_IMAP_PASSWORD",
             "folder": "INBOX"},
    "digest": {"every": "monday 09:00", "timezone": "Europe/London"},
}


def test_the_issues_example_is_valid():
    cfg = parse_config({"mail": [ENTRY], "admins": ["mail:Ian.Campbell@Citrix.com"]})
    m = cfg.mail[0]
    assert m.from_ == "todobot <todobot@example.org>" and m.imap.folder == "INBOX"
    assert m.smtp.starttls and not m.smtp.tls and m.digest.every == "monday 09:00"
    assert cfg.admins == ["mail:ian.campbell@citrix.com"]  # mail identities are lowercase


def test_minimal_entry_for_a_local_mta():
    cfg = parse_config({"mail": [{"list": "l@x.org", "from": "bot@x.org",
                                  "smtp": {"host": "127.0.0.1", "port": 25, "starttls": False}}]})
    m = cfg.mail[0]
    # No subject set: no other project's words ("Xen 4.3 TODO / Release Plan" used to be it).
    assert m.imap is None and m.smtp.username is None and m.subject is None
    assert m.subject_for("4.3") == "4.3 TODO"


@pytest.mark.parametrize("change,message", [
    ({"smtp": {"hots": "x"}}, "cfg: mail[0].smtp.hots: unknown key"),
    ({"imap": {"folder": "INBOX", "idle": True}}, "cfg: mail[0].imap.idle: unknown key"),
    ({"list": "not an address"}, "cfg: mail[0].list: 'not an address' is not a mail"),
    ({"subject": "Xen {relase}"}, "cfg: mail[0].subject: subject may use only {release}"),
    ({"smtp": {"tls": True, "starttls": True}}, "cfg: mail[0].smtp: set tls"),
    ({"digest": {"every": "someday"}}, "cfg: mail[0].digest"),
])
def test_errors_name_the_key(change, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"mail": [{**ENTRY, **change}]}, "cfg")
    assert message in str(err.value)


def test_a_missing_secret_stops_the_start(monkeypatch):
    from todobot.bot.mail import MailTransport
    cfg = parse_config({"mail": [ENTRY]})
    monkeypatch.delenv("TODOBOT_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="smtp.password_env: environment variable "
                                          "TODOBOT_SMTP_PASSWORD is not set"):
        MailTransport(cfg.mail[0], cfg)


def test_mail_is_imported_only_when_configured(monkeypatch):
    code = ("import sys; from todobot.bot.app import App; from todobot.bot.config import Config;"
            "App(Config())._configured_transports();"
            "print('todobot.bot.mail' in sys.modules, 'aioimaplib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    monkeypatch.setenv("TODOBOT_SMTP_PASSWORD", "x")
    monkeypatch.setenv("TODOBOT_IMAP_PASSWORD", "y")
    from todobot.bot.app import App
    from todobot.bot.mail import MailTransport
    [t] = App(parse_config({"mail": [ENTRY]}))._configured_transports()
    assert isinstance(t, MailTransport) and t.rooms() == ["xen-devel@lists.example.org"]
