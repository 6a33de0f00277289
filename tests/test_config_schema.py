"""The config's own validator (bot/config_schema.py) words every problem as pydantic 2 did.

Each expected text below is what pydantic 2.14 said for the same input (the config models
ran on pydantic before): a config that was wrong reads the same after the change.
"""

from __future__ import annotations

import pytest

from todobot.bot.config import Config, ConfigError, IrcNetwork, MailList, RoomRelease, Throttle, parse_config
from todobot.bot.config_schema import ValidationError

NET = {"network": "oftc"}
MAIL = {"list": "l@x.org", "from": "bot@x.org"}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "cfg")
    return str(exc.value).splitlines()


@pytest.mark.parametrize("data,expected", [
    # missing, and missing under an alias
    ({"irc": [{}]}, "cfg: irc[0].network: Field required"),
    ({"mail": [{"list": "l@x.org"}]}, "cfg: mail[0].from: Field required"),
    # unknown keys, and keys that are not strings
    ({"irc": [{**NET, "prot": 1}]}, "cfg: irc[0].prot: unknown key (did you mean `port`?)"),
    ({1: "x"}, "cfg: [1]: Keys should be strings"),
    # integers
    ({"irc": [{**NET, "port": "many"}]},
     "cfg: irc[0].port: Input should be a valid integer, unable to parse string as an integer"),
    ({"irc": [{**NET, "port": None}]}, "cfg: irc[0].port: Input should be a valid integer"),
    ({"irc": [{**NET, "port": 66.5}]},
     "cfg: irc[0].port: Input should be a valid integer, got a number with a fractional part"),
    ({"irc": [{**NET, "port": float("inf")}]}, "cfg: irc[0].port: Input should be a finite number"),
    ({"irc": [{**NET, "port": 1e19}]},
     "cfg: irc[0].port: Unable to parse input string as an integer, exceeded maximum size"),
    # numbers
    ({"irc": [{**NET, "ping_interval": "soon"}]},
     "cfg: irc[0].ping_interval: Input should be a valid number, unable to parse string as a number"),
    ({"irc": [{**NET, "ping_interval": [30]}]}, "cfg: irc[0].ping_interval: Input should be a valid number"),
    # strings
    ({"default_release": 4.2}, "cfg: default_release: Input should be a valid string"),
    ({"default_release": b"\xff"},
     "cfg: default_release: Input should be a valid string, unable to parse raw data as a unicode string"),
    # booleans
    ({"irc": [{**NET, "tls": "maybe"}]},
     "cfg: irc[0].tls: Input should be a valid boolean, unable to interpret input"),
    ({"irc": [{**NET, "tls": 0.5}]}, "cfg: irc[0].tls: Input should be a valid boolean"),
    ({"irc": [{**NET, "tls": 1e19}]}, "cfg: irc[0].tls: Input should be a valid boolean"),
    ({"irc": [{**NET, "tls": 2.0}]}, "cfg: irc[0].tls: Input should be a valid boolean, unable to interpret input"),
    # lists, dicts, Literal, nested models
    ({"irc": {"network": "oftc"}}, "cfg: irc: Input should be a valid list"),
    ({"mail_sections": ["Fixed"]}, "cfg: mail_sections: Input should be a valid dictionary"),
    ({"mail_sections": {"Fixed": "closed"}},
     "cfg: mail_sections.Fixed: Input should be 'done', 'blocker' or 'nice'"),
    ({"mail_sections": {3: "done"}}, "cfg: mail_sections[3].[key]: Input should be a valid string"),
    ({"irc": [{**NET, "throttle": 5}]},
     "cfg: irc[0].throttle: Input should be a valid dictionary or instance of Throttle"),
    ({"console": {"digest": "daily"}},
     "cfg: console.digest: Input should be a valid dictionary or instance of DigestRoom"),
    # each bound
    ({"irc": [{**NET, "port": 0}]}, "cfg: irc[0].port: Input should be greater than or equal to 1"),
    ({"irc": [{**NET, "port": 70000}]}, "cfg: irc[0].port: Input should be less than or equal to 65535"),
    ({"irc": [{**NET, "ping_timeout": 0}]}, "cfg: irc[0].ping_timeout: Input should be greater than 0"),
    ({"digest": {"grace_hours": -1}}, "cfg: digest.grace_hours: Input should be greater than or equal to 0"),
    ({"prefix": ""}, "cfg: prefix: String should have at least 1 character"),
    ({"prefix": "!" * 11}, "cfg: prefix: String should have at most 10 characters"),
    ({"log_level": "debug"}, "cfg: log_level: String should match pattern '^(DEBUG|INFO|WARNING|ERROR)$'"),
    # validators of a field and of a model
    ({"web": {"listen": "8080"}},
     "cfg: web.listen: expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got '8080'"),
    ({"mail": [{**MAIL, "smtp": {"tls": True}}]},
     "cfg: mail[0].smtp: set tls (TLS from the start) or starttls, not both"),
    ({"digest": {"timezone": "Nowhere/Place"}},
     "cfg: digest: unknown time zone 'Nowhere/Place' (use an IANA name like Europe/London)"),
])
def test_each_kind_of_problem_is_worded_as_before(data, expected):
    assert problems(data) == [expected]


def test_a_union_reports_both_readings_at_the_entry():
    """`channels:` entries are a name or a mapping: a number is neither, and an unknown key in
    a mapping is reported under the entry it belongs to."""
    assert problems({"irc": [{**NET, "channels": [5]}]}) == [
        "cfg: irc[0].channels[0]: Input should be a valid string",
        "cfg: irc[0].channels[0]: Input should be a valid dictionary or instance of RoomRelease"]
    assert problems({"irc": [{**NET, "channels": ["#a", {"name": "#b", "relase": "4.2"}]}]}) == [
        "cfg: irc[0].channels[1]: Input should be a valid string",
        "cfg: irc[0].channels[1].relase: unknown key (did you mean `release`?)"]


def test_every_problem_is_listed_in_order_with_its_list_index():
    assert problems({
        "prefx": "!", "max_depth": 20,
        "irc": [NET, {"network": "b", "port": "x", "channels": ["#a", {"name": "#c", "digest": {"evry": 1}}]}],
        "matrix": {"homeserver": "h"},
    }) == [
        "cfg: max_depth: Input should be less than or equal to 12",
        "cfg: irc[1].port: Input should be a valid integer, unable to parse string as an integer",
        "cfg: irc[1].channels[1]: Input should be a valid string",
        "cfg: irc[1].channels[1].digest.evry: unknown key (did you mean `every`?)",
        "cfg: matrix.user_id: Field required",
        "cfg: prefx: unknown key (did you mean `prefix`?)",
    ]


def test_a_model_s_own_check_waits_for_its_fields():
    """`set password_env or access_token_env` would only add noise while a field is wrong."""
    assert problems({"matrix": {"homeserver": "h", "user_id": 5}}) == [
        "cfg: matrix.user_id: Input should be a valid string"]
    assert problems({"matrix": {"homeserver": "h", "user_id": "@b:x"}}) == [
        "cfg: matrix: set password_env or access_token_env"]


@pytest.mark.parametrize("value,port", [("6697", 6697), (" 7000 ", 7000), ("6_697", 6697), (6697.0, 6697),
                                        ("6697.00", 6697), (b"6697", 6697)])
def test_integers_are_read_as_pydantic_read_them(value, port):
    assert parse_config({"irc": [{**NET, "port": value}]}).irc[0].port == port


@pytest.mark.parametrize("value", ["6697.", "0x10", "1__0", "\u0665", bytearray(b"1"), []])
def test_integers_pydantic_refused_are_refused(value):
    with pytest.raises(ConfigError, match=r"irc\[0\]\.port: Input should be a valid integer"):
        parse_config({"irc": [{**NET, "port": value}]}, "cfg")


@pytest.mark.parametrize("value,expected", [("yes", True), ("Off", False), (1, True), (0.0, False),
                                            (b"t", True), ("N", False)])
def test_booleans_are_read_as_pydantic_read_them(value, expected):
    assert parse_config({"irc": [{**NET, "tls": value}]}).irc[0].tls is expected


def test_values_take_the_field_s_type_and_defaults_are_fresh():
    cfg = parse_config({"cooldown": {"rate": 2, "burst": "3"}, "irc": [{**NET, "alternates": ("a", "b")}]})
    assert cfg.cooldown.rate == 2.0 and isinstance(cfg.cooldown.rate, float) and cfg.cooldown.burst == 3
    assert cfg.irc[0].alternates == ["a", "b"] and cfg.irc[0].throttle == Throttle()
    a, b = Config(), Config()
    assert a.admins == [] and a.admins is not b.admins and a.cooldown == b.cooldown


def test_null_lists_are_empty():
    """`admins:`, `irc:`, `mail:` and `channels:` left empty in YAML (null) mean none."""
    cfg = parse_config({"admins": None, "irc": [{**NET, "channels": None}], "mail": None})
    assert (cfg.admins, cfg.irc[0].channels, cfg.mail) == ([], [], [])


def test_an_alias_or_its_name_but_not_both():
    assert parse_config({"mail": [{"list": "l@x.org", "from_": "bot@x.org"}]}).mail[0].from_ == "bot@x.org"
    assert problems({"mail": [{**MAIL, "from_": "b@x.org"}]}) == [  # as before: named, not aliased
        "cfg: mail[0].from_: unknown key (did you mean `from_`?)"]


def test_models_built_in_code_are_validated_too():
    with pytest.raises(ValidationError) as exc:
        IrcNetwork(network="x", port="many", chanels=[])
    assert [(e["loc"], e["type"]) for e in exc.value.errors()] == [
        (("port",), "int_parsing"), (("chanels",), "extra_forbidden")]
    assert "2 validation errors for IrcNetwork" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        IrcNetwork(network="x", channels=[5], sasl_account="bot")
    assert [(e["loc"], e["msg"]) for e in exc.value.errors()] == [  # each branch of the union named
        (("channels", 0, "str"), "Input should be a valid string"),
        (("channels", 0, "RoomRelease"), "Input should be a valid dictionary or instance of RoomRelease")]
    with pytest.raises(ValidationError) as exc:
        IrcNetwork(network="x", sasl_account="bot")
    assert [(e["loc"], e["type"], e["msg"]) for e in exc.value.errors()] == [
        ((), "value_error", "Value error, sasl_account needs sasl_password_env")]
    net = IrcNetwork(network="x", channels=["#a", RoomRelease(name="#b")], throttle={"burst": 2})
    assert net.throttle == Throttle(burst=2) and net.channels[1].name == "#b"


def test_records_are_frozen_compared_by_value_and_copied_with_changes():
    net = IrcNetwork(network="x", port=7000)
    with pytest.raises(TypeError, match="frozen"):
        net.port = 1  # type: ignore[misc]
    assert net == IrcNetwork(network="x", port=7000) and net != IrcNetwork(network="x")
    assert hash(Throttle(burst=2)) == hash(Throttle(burst=2))
    moved = net.model_copy(update={"port": 7001, "host": "h"})
    assert (moved.port, net.port, moved.network, moved.host) == (7001, 7000, "x", "h")
    assert net.model_fields_set == {"network", "port"} and moved.model_fields_set == {"network", "port", "host"}
    assert net.model_dump(exclude={"channels"})["throttle"] == {"burst": 4, "rate": 1.0}
    mail = MailList.model_validate(MAIL)
    assert mail.model_dump()["from_"] == "bot@x.org" and '"from_":"bot@x.org"' in mail.model_dump_json()
