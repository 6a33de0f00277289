"""A real mailing list for the mail tests: Debian's Mailman 3 (core, REST API) with Postfix as
its MTA and Dovecot (IMAP and LMTP) holding the mailboxes, all on 127.0.0.1, private to one
test module.

    member --SMTP--> Postfix "in" --LMTP--> Mailman --SMTP--> Postfix "out" --LMTP--> Dovecot

Postfix plays two servers with one queue, each an smtpd listener of its own:

- "in" is the list's receiving server (authserv-id `list_id`): it strips any
  Authentication-Results carrying its own or the members' server's id, and stands in for a
  DMARC verifier by writing `<list_id>; dmarc=pass header.from=<From domain>` above From
  (a header_checks PREPEND: there is no DNS here to check a real signature);
- "out" is the members' receiving server (authserv-id `mx_id`), which only the list sends to:
  it writes `<mx_id>; dkim=pass header.d=<list domain>; dmarc=pass header.from=<list
  domain>` on top of every mail (an smtpd PREPEND: a signing list and a verifying MX).

Mailman gets its own `mailman.cfg` (SQLite, REST API and LMTP runner on loopback ports, SMTP
to Postfix "out"); its master watcher (what `mailman start` execs) runs in the foreground in
its own process group, stopped by its pid. Mailman's DMARC rule looks up `_dmarc.` TXT
records: the runners get a `sitecustomize` that answers every DNS question with NXDOMAIN, and
the public suffix list shipped with Mailman is put where Mailman would download it, so the
list never leaves this machine.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.dovecot import CONF as DOVECOT_CONF
from tests.servers.dovecot import Dovecot
from tests.servers.ircd import HOST, Daemon, ServerUnavailable
from tests.servers.ports import IN_USE, PortInUse, await_listening, on_free_ports, pick_port

MAILMAN_MASTER = "/usr/lib/mailman3/bin/master"
LIST_DOMAIN = "lists.example.org"
REST_USER, REST_PASS = "restadmin", "rest-secret-0815"

_LMTP_CONF = """
protocols = imap lmtp
postmaster_address = postmaster@example.org
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = mx.example.org
mydomain = example.org
myorigin = example.org
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = {domains}
transport_maps = texthash:{dir}/transport
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
disable_dns_lookups = yes
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
append_dot_mydomain = no
biff = no
"""

# Only the services a relay needs; the listeners come first (see the module's doc).
_MASTER_CF = """\
127.0.0.1:{port_in} inet n - n - - smtpd -o cleanup_service_name=cleanup_in
127.0.0.1:{port_out} inet n - n - - smtpd -o smtpd_client_restrictions=check_client_access,regexp:{dir}/out-results
cleanup_in unix n - n - 0 cleanup -o header_checks=regexp:{dir}/in-headers
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_MAILMAN_CFG = """\
[mailman]
layout: testing
site_owner: postmaster@example.org

[paths.testing]
var_dir: {dir}/var
bin_dir: /usr/lib/mailman3/bin

[webservice]
hostname: 127.0.0.1
port: {rest}
admin_user: {user}
admin_pass: {password}

[mta]
incoming: mailman.mta.postfix.LMTP
outgoing: mailman.mta.deliver.deliver
smtp_host: 127.0.0.1
smtp_port: {smtp}
lmtp_host: 127.0.0.1
lmtp_port: {lmtp}
configuration: {dir}/postfix-mailman.cfg

[dmarc]
resolver_timeout: 1s
resolver_lifetime: 1s
org_domain_data_url: http://127.0.0.1:9/public_suffix_list.dat

[runner.archive]
start: no

[runner.nntp]
start: no

[runner.digest]
start: no
{runners}"""

# The runners a post passes through (in, pipeline, out) and those answering members (command,
# virgin) look at their queue every RUNNER_SLEEP instead of Mailman's default second: each
# such wait adds up to its length to every post (docs/mailing-lists.md, "Latency").
QUEUE_RUNNERS = ("in", "pipeline", "out", "command", "virgin")
RUNNER_SLEEP = "0.1s"

# Mailman's runners are Python processes started by its master: this keeps their DNS lookups
# (the DMARC rule's) on this machine.
_NO_DNS = """\
import dns.resolver

def _nxdomain(self, qname, *args, **kwargs):
    raise dns.resolver.NXDOMAIN()

dns.resolver.Resolver.resolve = _nxdomain
dns.resolver.Resolver.query = _nxdomain
"""

FOOTER = """\
_______________________________________________
Xen-devel mailing list
Xen-devel@lists.example.org
https://lists.example.org/mailman/listinfo/xen-devel
"""


def missing() -> list[str]:
    return [p for p in ("postfix", "dovecot", MAILMAN_MASTER)
            if shutil.which(p) is None and not os.path.exists(p)]


def _smtp_banner(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            return s.recv(200).startswith(b"220")
    except OSError:
        return False


@dataclass
class MailingListServers:
    workdir: Path
    mx_id: str
    list_id: str
    dovecot: Dovecot
    lmtp_port: int  # Dovecot's
    smtp_in: int  # Postfix: where members (and the bot) send
    smtp_out: int  # Postfix: where Mailman sends
    mailman_lmtp: int
    rest_port: int
    daemons: list[Daemon] = field(default_factory=list)

    # -- the REST API --------------------------------------------------------------------------
    def rest(self, method: str, path: str, data: dict | None = None) -> dict:
        req = urllib.request.Request(f"http://{HOST}:{self.rest_port}/3.1/{path}", method=method,
                                     data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        token = base64.b64encode(f"{REST_USER}:{REST_PASS}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else {}

    def create_list(self, name: str, *, members: dict[str, str], display: str = "Xen-devel",
                    prefix: str = "[Xen-devel] ", footer: str = FOOTER) -> str:
        """A list NAME@lists.example.org as lists.xenproject.org runs it: From munged for
        DMARC (unconditionally: no DNS here), a subject prefix, a footer, members' posts
        accepted without holds. `members`: address -> display name."""
        address = f"{name}@{LIST_DOMAIN}"
        list_id = f"{name}.{LIST_DOMAIN}"
        self.rest("POST", "lists", {"fqdn_listname": address})
        self.rest("PATCH", f"lists/{list_id}/config", {
            "display_name": display, "subject_prefix": prefix,
            "dmarc_mitigate_action": "munge_from", "dmarc_mitigate_unconditionally": True,
            "reply_goes_to_list": "no_munging", "first_strip_reply_to": False,
            "default_member_action": "accept", "default_nonmember_action": "hold",
            "send_welcome_message": False, "archive_policy": "never",
            "require_explicit_destination": False, "max_message_size": 0,
            "max_num_recipients": 0, "administrivia": False})
        # Mailman reads list templates from template_dir/lists/LIST-ID/LANG/.
        templates = self.workdir / "mailman" / "var" / "templates" / "lists" / list_id / "en"
        templates.mkdir(parents=True, exist_ok=True)
        (templates / "list:member:regular:footer.txt").write_text(footer)
        for addr, shown in members.items():
            self.rest("POST", "members", {
                "list_id": list_id, "subscriber": addr, "display_name": shown,
                "pre_verified": True, "pre_confirmed": True, "pre_approved": True,
                "send_welcome_message": False})
        return address

    def add_user(self, user: str, password: str) -> None:
        """A mailbox more (Dovecot reads its passwd-file again when it changes)."""
        self.dovecot.users[user] = password
        (self.dovecot.workdir / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{pw}::::::\n" for u, pw in self.dovecot.users.items()))

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()
        self.dovecot.stop()

    def logs(self) -> str:
        out = []
        for p in (self.workdir / "postfix" / "maillog", self.workdir / "mailman" / "var" / "logs"
                  / "mailman.log", self.workdir / "mailman" / "var" / "logs" / "smtp.log"):
            if p.exists():
                out.append(f"== {p.name}\n" + p.read_text(errors="replace")[-4000:])
        return "\n".join(out)


def _start_dovecot(workdir: Path, users: dict[str, str]) -> tuple[Dovecot, int]:
    for sub in ("run", "state", "mail"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    shutil.chown(workdir / "mail", "dovenull", "dovenull")
    (workdir / "users").write_text("".join(f"{u}:{{PLAIN}}{pw}::::::\n" for u, pw in users.items()))

    def launch(ports: list[int]) -> tuple[Dovecot, int]:
        imap, lmtp = ports
        conf = DOVECOT_CONF.format(dir=workdir, port=imap).replace("protocols = imap\n", "")
        (workdir / "dovecot.conf").write_text(conf + _LMTP_CONF.format(lmtp=lmtp))
        (workdir / "dovecot.log").unlink(missing_ok=True)
        daemon = Daemon("dovecot", ["dovecot", "-F", "-c", str(workdir / "dovecot.conf")],
                        workdir / "daemon.log", workdir)
        server = Dovecot(workdir, imap, dict(users), daemon)
        try:
            server.start()
        except ServerUnavailable as exc:
            if IN_USE in str(exc).casefold():
                raise PortInUse(str(exc)) from None
            raise
        return server, lmtp
    return on_free_ports(2, launch)


def _postfix_files(d: Path, *, port_in: int, port_out: int, domains: list[str],
                   transport: dict[str, str], mx_id: str, list_id: str) -> None:
    (d / "main.cf").write_text(_MAIN_CF.format(dir=d, domains=" ".join(domains)))
    (d / "master.cf").write_text(_MASTER_CF.format(dir=d, port_in=port_in, port_out=port_out))
    (d / "transport").write_text("".join(f"{dom} {to}\n" for dom, to in transport.items()))
    ids = "|".join(i.replace(".", r"\.") for i in (mx_id, list_id))
    (d / "in-headers").write_text(
        f"/^Authentication-Results:[[:space:]]*({ids})([[:space:];]|$)/ IGNORE\n"
        f"/^From:.*@([A-Za-z0-9.-]+)>?[[:space:]]*$/ PREPEND Authentication-Results: {list_id}; "
        f"dmarc=pass header.from=$1\n")
    (d / "out-results").write_text(
        f"/./ PREPEND Authentication-Results: {mx_id}; dkim=pass header.d={LIST_DOMAIN}; "
        f"dmarc=pass header.from={LIST_DOMAIN}\n")


class PostfixDaemon(Daemon):
    """`postfix start-fg`: its master makes a session of its own (setsid), out of the process
    group we started; so it is stopped by the pid it writes, as `postfix stop` would."""

    def stop(self, timeout: float = 10.0) -> None:
        pid_file = self.cwd / "queue" / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        if pid is not None and _is_our_master(pid, self.cwd):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while _is_our_master(pid, self.cwd) and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop(timeout)


def _is_our_master(pid: int, d: Path) -> bool:
    """Whether `pid` still runs the master of the Postfix in `d` (its working directory is
    d/queue): a stale pid file must not end someone else's process."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == d / "queue"
    except OSError:
        return False


def _start_postfix(d: Path, *, domains: list[str], transport: dict[str, str], mx_id: str,
                   list_id: str) -> tuple[Daemon, int, int]:
    for sub in ("queue", "data"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    shutil.chown(d / "data", "postfix")
    os.chmod(d, 0o755)

    def launch(ports: list[int]) -> tuple[Daemon, int, int]:
        port_in, port_out = ports
        _postfix_files(d, port_in=port_in, port_out=port_out, domains=domains,
                       transport=transport, mx_id=mx_id, list_id=list_id)
        (d / "maillog").unlink(missing_ok=True)
        daemon = PostfixDaemon("postfix", ["postfix", "-c", str(d), "start-fg"], d / "daemon.log", d)
        daemon.start()
        assert daemon.proc is not None
        try:
            await_listening(ports, daemon.proc.pid, [d / "maillog", d / "daemon.log"],
                            alive=daemon.alive)
        except PortInUse:
            daemon.stop()
            raise
        deadline = time.monotonic() + 30
        while not all(_smtp_banner(p) for p in ports):
            if not daemon.alive() or time.monotonic() > deadline:
                tail = (d / "maillog").read_text(errors="replace")[-3000:] if (d / "maillog").exists() else ""
                daemon.stop()
                raise ServerUnavailable(f"postfix not ready on {ports}:\n{daemon.tail()}\n{tail}")
            time.sleep(0.1)
        return daemon, port_in, port_out
    return on_free_ports(2, launch)


def _start_mailman(d: Path, *, smtp_port: int, lmtp_port: int,
                   runner_sleep: str) -> tuple[Daemon, int, int]:
    (d / "var").mkdir(parents=True, exist_ok=True)
    (d / "site").mkdir(exist_ok=True)
    (d / "site" / "sitecustomize.py").write_text(_NO_DNS)
    (d / "postfix-mailman.cfg").write_text("[postfix]\npostmap_command: /bin/true\n"
                                           "transport_file_type: hash\n")
    shipped = Path("/usr/lib/python3/dist-packages/mailman/rules/data/public_suffix_list.dat")
    suffixes = d / "var" / "public_suffix_list.dat"
    shutil.copyfile(shipped, suffixes)
    expires = time.time() + 365 * 86400  # Mailman reads the mtime as the copy's expiry
    os.utime(suffixes, (expires, expires))

    def launch(ports: list[int]) -> tuple[Daemon, int, int]:
        lmtp, rest = ports
        cfg = d / "mailman.cfg"
        cfg.write_text(_MAILMAN_CFG.format(dir=d, rest=rest, user=REST_USER, password=REST_PASS,
                                           smtp=smtp_port, lmtp=lmtp, runners="".join(
                                               f"\n[runner.{r}]\nsleep_time: {runner_sleep}\n"
                                               for r in QUEUE_RUNNERS)))
        logs = d / "var" / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        (d / "var" / "master.pid").unlink(missing_ok=True)
        env_argv = ["env", f"PYTHONPATH={d / 'site'}", MAILMAN_MASTER, "--force", "-C", str(cfg)]
        daemon = Daemon("mailman", env_argv, d / "daemon.log", d)
        daemon.start()
        assert daemon.proc is not None
        try:
            await_listening(ports, daemon.proc.pid, [logs / "mailman.log", d / "daemon.log"],
                            alive=daemon.alive, timeout=120)
        except PortInUse:
            daemon.stop()
            raise
        deadline = time.monotonic() + 120
        last = "no answer"
        while time.monotonic() < deadline and daemon.alive():
            try:
                req = urllib.request.Request(f"http://{HOST}:{rest}/3.1/system/versions")
                token = base64.b64encode(f"{REST_USER}:{REST_PASS}".encode()).decode()
                req.add_header("Authorization", f"Basic {token}")
                with urllib.request.urlopen(req, timeout=5):
                    pass
                if _smtp_banner_lmtp(lmtp):
                    return daemon, lmtp, rest
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        log = (logs / "mailman.log").read_text(errors="replace")[-4000:] if (logs / "mailman.log").exists() else ""
        daemon.stop()
        raise ServerUnavailable(f"mailman not ready ({last}):\n{daemon.tail()}\n{log}")
    given = iter([lmtp_port])
    return on_free_ports(2, launch, pick=lambda: next(given, None) or pick_port())


def _smtp_banner_lmtp(port: int) -> bool:
    return _smtp_banner(port)  # LMTP greets like SMTP: "220 ..."


def start_mailing_list(workdir: Path, users: dict[str, str], member_domains: list[str], *,
                       mx_id: str, list_id: str,
                       runner_sleep: str = RUNNER_SLEEP) -> MailingListServers:
    """Dovecot (users: address -> password), Postfix and Mailman; mail for `member_domains`
    is delivered to Dovecot, mail for lists.example.org to Mailman. `runner_sleep`: how long
    Mailman's queue runners sleep between looks at their queue (Mailman's own default: 1s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    started: list = []
    try:
        dovecot, lmtp = _start_dovecot(workdir / "dovecot", users)
        started.append(dovecot)
        mailman_lmtp = pick_port()  # Postfix is told first; Mailman takes it, or reloads Postfix
        transport = {LIST_DOMAIN: f"lmtp:inet:127.0.0.1:{mailman_lmtp}"}
        transport |= {dom: f"lmtp:inet:127.0.0.1:{lmtp}" for dom in member_domains}
        pf_dir = workdir / "postfix"
        postfix, smtp_in, smtp_out = _start_postfix(
            pf_dir, domains=[LIST_DOMAIN, *member_domains], transport=transport,
            mx_id=mx_id, list_id=list_id)
        started.append(postfix)
        mailman, got_lmtp, rest = _start_mailman(workdir / "mailman", smtp_port=smtp_out,
                                                 lmtp_port=mailman_lmtp,
                                                 runner_sleep=runner_sleep)
        started.append(mailman)
        if got_lmtp != mailman_lmtp:
            transport[LIST_DOMAIN] = f"lmtp:inet:127.0.0.1:{got_lmtp}"
            (pf_dir / "transport").write_text("".join(f"{k} {v}\n" for k, v in transport.items()))
            subprocess.run(["postfix", "-c", str(pf_dir), "reload"], check=True,
                           capture_output=True)
        servers = MailingListServers(workdir, mx_id, list_id, dovecot, lmtp, smtp_in, smtp_out,
                                     got_lmtp, rest, daemons=[postfix, mailman])
        servers.rest("POST", "domains", {"mail_host": LIST_DOMAIN})
        return servers
    except BaseException:
        for s in reversed(started):
            s.stop()
        raise
