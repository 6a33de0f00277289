"""An IRC-only bot loads none of the optional clients: they cost memory (RSS) on every
deployment that does not use them. Measured in a fresh interpreter, since other tests in
this process import them anyway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Packages only the Matrix transport, the status page or the mail transport need; and what
# an IRC-only bot does without (bench/memory.py): pydantic (~12 MB; bot/config_schema.py
# checks the config), uuid and logging.handlers (~0.7 MB together), the HTML and Markdown
# renderers with `html` and difflib (~0.5 MB: the mail and web forms, a mistyped name). (importlib.metadata,
# importlib.resources and tempfile come with the `irc` package, whose __init__ imports
# importlib.metadata for its version: ~2 MB, measured in docs/benchmarks.md.)
OPTIONAL = ("nio", "aiohttp", "pygal", "jinja2", "aioimaplib", "aiosmtplib", "authres", "dkim", "pydantic", "uuid",
            "logging.handlers", "html", "difflib", "todobot.commands.render_html",
            "todobot.commands.render_markdown", "prometheus_client")

IRC_ONLY = """\
database: bot.sqlite3
admins: ["irc:net/admin"]
irc:
  - network: net
    host: 127.0.0.1
    port: 6667
    nick: todobot
    channels: ["#dev"]
"""

MAIL = IRC_ONLY + """\
mail:
  - list: dev@lists.example.org
    from: "todobot <todobot@example.org>"
    authserv_id: mx.example.org
    smtp: {host: 127.0.0.1, port: 2525, starttls: false, tls: false}
    imap: {host: 127.0.0.1, port: 1143, tls: false, username: todobot, password_env: TODOBOT_PROBE_IMAP_PASSWORD}
"""

# The path `todobot run` takes: the CLI module, the config, an initialized App (database
# open, transports built) and its scheduler, without connecting anywhere.
PROBE = textwrap.dedent("""\
    import asyncio, json, os, sys
    import todobot.bot.cli
    from todobot.bot.app import App
    from todobot.bot.config import load_config

    async def main():
        app = App(load_config(sys.argv[1]), config_path=sys.argv[1])
        await app.initialize()
        app._start_scheduler()
        names = json.loads(sys.argv[2])
        loaded = [n for n in names if any(m == n or m.startswith(n + ".") for m in sys.modules)]
        print(json.dumps(loaded), flush=True)
        os._exit(0)  # nothing to clean up that outlives the process

    try:
        asyncio.run(main())
    except BaseException as exc:  # report it; never hang on the database thread
        print(repr(exc), file=sys.stderr, flush=True)
        os._exit(1)
""")


def _unmeasured(env: dict[str, str]) -> dict[str, str]:
    """The environment without coverage's start-up variables: under `make coverage` the probe
    would otherwise load coverage (and uuid with it) before it counts what the bot loaded."""
    return {k: v for k, v in env.items()
            if k not in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")}


def _optional_modules_loaded(tmp_path: Path, config: str) -> list[str]:
    path = tmp_path / "bot.yaml"
    path.write_text(config, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), json.dumps(OPTIONAL)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**_unmeasured(os.environ), "TODOBOT_PROBE_IMAP_PASSWORD": "secret"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_irc_only_bot_imports_no_optional_client(tmp_path):
    assert _optional_modules_loaded(tmp_path, IRC_ONLY) == []


def test_probe_sees_a_configured_transport_s_client(tmp_path):
    """The probe itself works: a mail entry does load the mail clients."""
    assert {"aioimaplib", "aiosmtplib"} <= set(_optional_modules_loaded(tmp_path, MAIL))


def _loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps([n for n in {list(names)!r} if n in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_matrix_package_loads_its_client_only_for_the_transport():
    """`todobot.bot.matrix` and its renderer import no matrix-nio or aiohttp; the transport
    (`from todobot.bot.matrix import MatrixTransport`) does."""
    clients = ("nio", "aiohttp")
    assert _loaded_after("import todobot.bot.matrix, todobot.bot.matrix.render", clients) == []
    assert _loaded_after("from todobot.bot.matrix import MatrixTransport", clients) == list(clients)
