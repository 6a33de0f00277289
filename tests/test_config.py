"""Strict configuration: unknown keys and wrong types fail at start, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from todobot.bot import config as config_module
from todobot.bot.config import ConfigError, load_config, parse_config, serving_problems

EXAMPLE = Path(__file__).resolve().parent.parent / "bot.example.yaml"


def test_minimal_file_is_valid(tmp_path):
    f = tmp_path / "bot.yaml"
    f.write_text('admins: ["console:ijc"]\n')
    cfg = load_config(f)
    assert cfg.admins == ["console:ijc"] and cfg.prefix == "!"
    assert cfg.database == str(tmp_path / "todobot.sqlite3")  # next to the file, not in the cwd
    assert cfg.irc == [] and cfg.matrix is None and cfg.default_release is None


def test_empty_file_is_valid(tmp_path):
    f = tmp_path / "bot.yaml"
    f.write_text("")
    cfg = load_config(f)
    assert (cfg.prefix, cfg.admins, cfg.irc, cfg.matrix, cfg.mail) == ("!", [], [], None, [])


def test_example_config_is_valid():
    """The example parses into the values it documents (a sample of each section)."""
    cfg = load_config(EXAMPLE)
    assert cfg.source == str(EXAMPLE)
    assert (cfg.prefix, cfg.default_release, cfg.max_depth, cfg.max_adds_per_hour) == ("!", "4.2", 8, 30)
    assert cfg.admins == ["console:ijc", "irc:oftc/ijc", "matrix:@ijc:example.org"]
    [irc] = cfg.irc
    assert (irc.network, irc.host, irc.port, irc.tls, irc.nick) == ("oftc", "irc.oftc.net", 6697, True, "todobot")
    assert irc.alternates == ["todobot_", "todobot__"]
    assert (irc.throttle.burst, irc.throttle.rate, irc.max_lines) == (4, 1.0, 5)
    assert cfg.matrix is not None and cfg.matrix.user_id == "@todobot:example.org"
    assert (cfg.matrix.e2ee, cfg.matrix.max_events) == (True, 5)
    assert cfg.mail and cfg.mail[0].list == "xen-devel@lists.example.org"
    assert cfg.mail[0].authserv_id == "mx.example.org"


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    f = tmp_path / "etc" / "bot.yaml"
    f.write_text("database: data/todo.sqlite3\nlog_file: todobot.log\n"
                 "matrix: {homeserver: http://127.0.0.1:1, user_id: '@b:x', password_env: X,"
                 " data_dir: matrix}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("etc/bot.yaml")
    etc = tmp_path / "etc"
    assert (cfg.database, cfg.log_file, cfg.matrix.data_dir) == (
        str(etc / "data" / "todo.sqlite3"), str(etc / "todobot.log"), str(etc / "matrix"))
    f.write_text("database: /srv/todo.sqlite3\n")
    assert load_config(f).database == "/srv/todo.sqlite3"
    assert load_config(None).database == "todobot.sqlite3"  # no file: the current directory


@pytest.mark.parametrize("data,message", [
    ({"prefx": "!"}, "cfg: prefx: unknown key (did you mean `prefix`?)"),
    ({"irc": [{"network": "x", "chanels": []}]}, "cfg: irc[0].chanels: unknown key (did you mean `channels`?)"),
    ({"irc": [{"network": "x", "channels": [{"name": "#a", "relase": "4.2"}]}]},
     "cfg: irc[0].channels[0].relase: unknown key (did you mean `release`?)"),
    ({"matrix": {"homeserver": "h", "user_id": "@b:x", "password_env": "X", "data_dri": "d"}},
     "cfg: matrix.data_dri: unknown key (did you mean `data_dir`?)"),
    ({"digest": {"evry": "daily 09:00"}}, "cfg: digest.evry: unknown key (did you mean `every`?)"),
    ({"wbe": {}}, "cfg: wbe: unknown key (did you mean `web`?)"),
])
def test_unknown_keys_suggest_the_nearest(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "cfg")
    assert message in str(exc.value).splitlines()


def test_an_unknown_key_far_from_any_is_just_unknown():
    with pytest.raises(ConfigError) as exc:
        parse_config({"zzzzzz": 1}, "cfg")
    assert str(exc.value) == "cfg: zzzzzz: unknown key"


@pytest.mark.parametrize("entry,message", [
    ("ijc", "'ijc' is not an identity: write console:NICK, irc:NETWORK/ACCOUNT, matrix:@user:server or mail:ADDRESS"),
    ("irc:ijc", "'irc:ijc': expected irc:NETWORK/ACCOUNT"),
    ("irc:libera/ijc", "'irc:libera/ijc': no IRC network 'libera' is configured under irc: (configured: oftc)"),
    ("matrix:ijc", "'matrix:ijc' is not an identity"),
    ("mail:ijc", "'mail:ijc' is not an identity"),
    ("console:", "'console:' is not an identity"),
    ("slack:ijc", "'slack:ijc' is not an identity"),
    ("irc:oftc/~bob", "'irc:oftc/~bob' is a nick without a services account, which proves nothing: "
     "write irc:oftc/ACCOUNT, the account they log in to"),
    ("console:*", "'console:*': an identity is matched exactly, wildcards match nobody: write each "
     "release manager's identity in full (console:NICK, irc:NETWORK/ACCOUNT"),
    ("matrix:@*:example.org", "'matrix:@*:example.org': an identity is matched exactly"),
    ("mail:*@example.org", "'mail:*@example.org': an identity is matched exactly"),
    ("irc:oftc/ij?", "'irc:oftc/ij?': an identity is matched exactly"),
])
def test_admins_must_be_identities(entry, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"admins": ["console:ijc", entry], "irc": [{"network": "oftc"}]}, "bot.yaml")
    assert str(exc.value).startswith(f"bot.yaml: admins[1]: {message}")
    assert "\n" not in str(exc.value)


def test_well_formed_admins():
    cfg = parse_config({"admins": ["console:ijc", "irc:oftc/ijc", "matrix:@ijc:example.org",
                                   "mail:ian.campbell@citrix.com"], "irc": [{"network": "oftc"}]})
    assert len(cfg.admins) == 4


@pytest.mark.parametrize("listen,ok", [("127.0.0.1:8080", True), ("[::1]:8080", True), ("localhost:0", True),
                                       ("8080", False), (":8080", False), ("host:http", False),
                                       ("127.0.0.1:70000", False)])
def test_web_listen_is_host_and_port(listen, ok):
    if ok:
        assert parse_config({"web": {"listen": listen}}).web.listen == listen
    else:
        with pytest.raises(ConfigError, match=r"cfg: web.listen: expected HOST:PORT"):
            parse_config({"web": {"listen": listen}}, "cfg")


def test_serving_problems_name_the_file_and_the_entry(tmp_path, monkeypatch):
    monkeypatch.delenv("TODOBOT_A", raising=False)
    monkeypatch.setenv("TODOBOT_B", "set")
    f = tmp_path / "bot.yaml"
    f.write_text("irc:\n  - {network: a, sasl_account: x, sasl_password_env: TODOBOT_B}\n"
                 "  - {network: b, sasl_account: x, sasl_password_env: TODOBOT_A}\n"
                 "matrix: {homeserver: 'http://h', user_id: '@b:x', access_token_env: TODOBOT_A,"
                 " data_dir: nosuch/matrix}\n")
    assert serving_problems(load_config(f)) == [
        f"{f}: irc[1].sasl_password_env: environment variable TODOBOT_A is not set",
        f"{f}: matrix.access_token_env: environment variable TODOBOT_A is not set",
        f"{f}: matrix.data_dir: the directory {tmp_path / 'nosuch'} does not exist "
        f"(create it, or fix the path {tmp_path / 'nosuch' / 'matrix'})",
    ]


def test_e2ee_without_the_extra_says_which_to_install(monkeypatch):
    monkeypatch.setenv("TODOBOT_B", "set")
    monkeypatch.setattr(config_module, "encryption_available", lambda: False)
    matrix = {"homeserver": "http://h", "user_id": "@b:x", "password_env": "TODOBOT_B"}
    cfg = parse_config({"matrix": {**matrix, "e2ee": True}}, "bot.yaml")
    assert serving_problems(cfg) == [
        "bot.yaml: matrix.e2ee: true needs the encryption extra: pip install 'release-todobot[e2e]'"]
    # Not asked for explicitly: the bot runs without encryption.
    assert serving_problems(parse_config({"matrix": matrix})) == []
    monkeypatch.setattr(config_module, "encryption_available", lambda: True)
    assert serving_problems(cfg) == []


def test_verify_dkim_without_the_extra_says_which_to_install(monkeypatch):
    mail = {"list": "l@example.org", "from": "b@example.org", "verify_dkim": True}
    cfg = parse_config({"mail": [mail]}, "bot.yaml")
    assert serving_problems(cfg) == []  # the test extra has dkimpy
    monkeypatch.setattr(config_module, "find_spec", lambda name: None if name == "dkim" else object())
    assert serving_problems(cfg) == [
        "bot.yaml: mail[0].verify_dkim: true needs the DKIM extra: pip install 'release-todobot[dkim]'"]


@pytest.mark.parametrize("data,message", [
    ({"prefx": "!"}, "cfg: prefx: unknown key"),
    ({"admins": "console:ijc"}, "cfg: admins: Input should be a valid list"),
    ({"irc": [{"network": "oftc", "chanels": ["#xen"]}]}, "cfg: irc[0].chanels: unknown key"),
    ({"log_format": "xml"}, "cfg: log_format: String should match pattern"),
    ({"irc": [{"network": "oftc", "port": "many"}]}, "cfg: irc[0].port: Input should be a valid integer"),
    ({"irc": [{"network": "oftc", "channels": [{"name": "#a", "relase": "4.2"}]}]},
     "cfg: irc[0].channels[0].relase: unknown key"),
    ({"matrix": {"homeserver": "http://127.0.0.1:8008", "user_id": "@b:x"}},
     "cfg: matrix: set password_env or access_token_env"),
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
    """Each login method alone parses, and into the fields the transport reads."""
    def net(**keys):
        [parsed] = parse_config({"irc": [{"network": "oftc", **keys}]}, "cfg").irc
        return parsed
    plain = net(sasl_account="bot", sasl_password_env="P")
    assert (plain.sasl_mechanism, plain.sasl_account, plain.sasl_password_env) == ("PLAIN", "bot", "P")
    external = net(sasl_mechanism="EXTERNAL", tls_certfile="c.pem", tls_keyfile="k.pem")
    assert (external.sasl_mechanism, external.tls_certfile, external.tls_keyfile, external.tls) == (
        "EXTERNAL", "c.pem", "k.pem", True)
    nickserv = net(nickserv_password_env="N", nickserv_account="bot")
    assert (nickserv.nickserv_account, nickserv.nickserv_password_env, nickserv.sasl_account) == (
        "bot", "N", None)
    certfp = net(tls_certfile="c.pem")  # CertFP without SASL: services know the fingerprint
    assert (certfp.tls_certfile, certfp.sasl_mechanism, certfp.sasl_account) == ("c.pem", "PLAIN", None)
