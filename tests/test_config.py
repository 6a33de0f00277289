"""Strict configuration: unknown keys and wrong types fail at start, naming the key."""

from __future__ import annotations

import pytest

from todobot.bot.config import ConfigError, load_config, parse_config


def test_minimal_file_is_valid(tmp_path):
    f = tmp_path / "bot.yaml"
    f.write_text('admins: ["console:ijc"]\n')
    cfg = load_config(f)
    assert cfg.admins == ["console:ijc"] and cfg.prefix == "!" and cfg.database == "todobot.sqlite3"
    assert cfg.irc == [] and cfg.matrix is None and cfg.default_release is None


def test_empty_file_is_valid(tmp_path):
    f = tmp_path / "bot.yaml"
    f.write_text("")
    assert load_config(f).prefix == "!"


def test_example_config_is_valid():
    cfg = load_config("bot.example.yaml")
    assert cfg.irc and cfg.irc[0].network


@pytest.mark.parametrize("data,message", [
    ({"prefx": "!"}, "cfg: prefx: unknown key"),
    ({"admins": "console:ijc"}, "cfg: admins: Input should be a valid list"),
    ({"irc": [{"network": "oftc", "chanels": ["#xen"]}]}, "cfg: irc[0].chanels: unknown key"),
    ({"irc": [{"network": "oftc", "port": "many"}]}, "cfg: irc[0].port: Input should be a valid integer"),
    ({"irc": [{"network": "oftc", "channels": [{"name": "#a", "relase": "4.2"}]}]},
     "cfg: irc[0].channels[0].relase: unknown key"),
    ({"matrix": {"homeserver": "http://127.0.0.1:8008", "user_id": "@b:x"}},
     "cfg: matrix: Value error, set password_env or access_token_env"),
    ({"console": {"rom": "x"}}, "cfg: console.rom: unknown key"),
])
def test_errors_name_the_path(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "cfg")
    assert any(line.startswith(message) for line in str(exc.value).splitlines()), str(exc.value)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(["a"], "cfg")
    f = tmp_path / "bad.yaml"
    f.write_text("admins: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_secrets_come_from_the_environment(monkeypatch):
    cfg = parse_config({"irc": [{"network": "oftc", "sasl_account": "todobot",
                                 "sasl_password_env": "TODOBOT_TEST_PW"}]})
    monkeypatch.delenv("TODOBOT_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="TODOBOT_TEST_PW is not set"):
        cfg.irc[0].sasl_password()
    monkeypatch.setenv("TODOBOT_TEST_PW", "s3cret")
    assert cfg.irc[0].sasl_password() == "s3cret"


async def test_a_missing_secret_stops_the_start(tmp_path, monkeypatch):
    from todobot.bot.app import App
    monkeypatch.delenv("TODOBOT_NO_SUCH_SECRET", raising=False)
    for section in ({"irc": [{"network": "x", "host": "127.0.0.1", "sasl_account": "bot",
                              "sasl_password_env": "TODOBOT_NO_SUCH_SECRET"}]},
                    {"matrix": {"homeserver": "http://127.0.0.1:1", "user_id": "@b:x",
                                "password_env": "TODOBOT_NO_SUCH_SECRET"}}):
        app = App(parse_config({"database": str(tmp_path / "s.sqlite3"), **section}))
        with pytest.raises(ConfigError, match="TODOBOT_NO_SUCH_SECRET is not set"):
            await app.initialize()
            await app.start()  # (loopback only, were it to get this far)
        await app.stop()


@pytest.mark.parametrize("net,message", [
    ({"sasl_account": "bot", "sasl_password_env": "P", "nickserv_password_env": "N"},
     "choose one login method, not SASL PLAIN (sasl_account) and NickServ IDENTIFY"),
    ({"sasl_mechanism": "EXTERNAL", "tls_certfile": "c.pem", "nickserv_password_env": "N"},
     "choose one login method, not SASL EXTERNAL and NickServ IDENTIFY"),
    ({"sasl_mechanism": "EXTERNAL"}, "sasl_mechanism EXTERNAL needs tls_certfile"),
    ({"sasl_account": "bot"}, "sasl_account needs sasl_password_env"),
    ({"nickserv_account": "bot"}, "nickserv_account needs nickserv_password_env"),
    ({"tls": False, "tls_ca": "ca.pem"}, "need tls: true"),
    ({"sasl_mechanism": "SCRAM"}, "irc[0].sasl_mechanism: String should match pattern"),
])
def test_irc_login_methods_are_exclusive(net, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"irc": [{"network": "oftc", **net}]}, "cfg")
    assert message in str(err.value) and "cfg: irc[0]" in str(err.value)


def test_irc_login_methods_each_alone_are_valid():
    for net in ({"sasl_account": "bot", "sasl_password_env": "P"},
                {"sasl_mechanism": "EXTERNAL", "tls_certfile": "c.pem", "tls_keyfile": "k.pem"},
                {"nickserv_password_env": "N", "nickserv_account": "bot"},
                {"tls_certfile": "c.pem"}):  # CertFP without SASL: services know the fingerprint
        parse_config({"irc": [{"network": "oftc", **net}]}, "cfg")
