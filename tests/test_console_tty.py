"""The console on a real terminal: prompt, line editing and history through readline."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


class Terminal:
    """Reads what the program writes to its terminal, keeping what a wait did not consume."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def expect(self, needle: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {needle!r}; got {self.buf[-400:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"terminal closed while waiting for {needle!r}"
                self.buf += chunk
        upto = self.buf.index(needle) + len(needle)
        seen, self.buf = self.buf[:upto], self.buf[upto:]
        return seen


def test_interactive_console_edits_and_recalls_lines(tmp_path):
    subprocess.run([sys.executable, "-m", "todobot", "import", str(SEED), "--release", "4.2",
                    "--db", "t.sqlite3"], cwd=tmp_path, check=True, capture_output=True)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "todobot", "console", "--db", "t.sqlite3", "--as", "ijc"],
                            stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, close_fds=True,
                            env={**os.environ, "TERM": "xterm", "TODOBOT_LOG": str(tmp_path / "log")})
    os.close(slave)
    term = Terminal(master)
    try:
        term.expect(b"<ijc> ")
        # Type "!show 1", then fix a typo with backspace: "!shox<BS>w 10" -> "!show 10".
        os.write(master, b"!shox\x7fw 10\r")
        out = term.expect(b"SONAMES as necessary.")
        assert b"<todobot> #10 Bump library SONAMES as necessary." in out
        term.expect(b"<ijc> ")
        # Up-arrow recalls the previous line from history; Enter runs it again.
        os.write(master, b"\x1b[A\r")
        out = term.expect(b"SONAMES as necessary.")
        assert b"#10 Bump library SONAMES" in out
        term.expect(b"<ijc> ")
        os.write(master, b"\x04")  # Ctrl-D: end of input, the console exits
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
