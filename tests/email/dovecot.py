"""A real Dovecot IMAP server for tests: ephemeral loopback ports, a temporary maildir, one passwd-file user.

`DovecotServer.start()` writes a self-contained config (nothing under /etc is read), generates a self-signed
certificate with `openssl` so IMAPS and STARTTLS can be tested too, and runs `dovecot -F` in the foreground.
If the `dovecot` binary is missing it FAILS with the command that installs it: a missing server is never a skip.

Pitfalls handled here: imap-login refuses to run as root (`default_login_user = dovenull`), internal processes
run as `dovecot`, mail is owned by the `dovecot` user (`first_valid_uid = 1` lets low uids in).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import IMAPClient

from tests.ports import free_port

INSTALL_HINT = "dovecot is not installed: run `apt-get update && apt-get install -y dovecot-imapd`"
USER = "support@example.test"
PASSWORD = "secret-pass"


def _config(root: Path, imap_port: int, imaps_port: int) -> str:
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
mail_fsync = never
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Outgoing {{
    special_use = \\Sent
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


@dataclass
class DovecotServer:
    """One running Dovecot; `client()` opens a logged-in imapclient connection for appending and checking."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dovecot-")))
    imap_port: int = 0
    imaps_port: int = 0
    user: str = USER
    password: str = PASSWORD
    cafile: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> DovecotServer:
        binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        os.chmod(self.root, 0o755)  # noqa: S103 - the dovecot user must reach the maildir
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "mail", "dovecot", "dovecot")
        self._certificate()
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        self.imap_port, self.imaps_port = free_port(), free_port()
        conf = self.root / "dovecot.conf"
        conf.write_text(_config(self.root, self.imap_port, self.imaps_port))
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()
        return self

    def _certificate(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem"),
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.cafile = self.root / "cert.pem"

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                log = (self.root / "dovecot.log").read_text() if (self.root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot exited: {err}\n{log}")
            try:
                with self.client():
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start in time")

    def ssl_context(self) -> ssl.SSLContext:
        assert self.cafile is not None
        return ssl.create_default_context(cafile=str(self.cafile))

    def client(self, folder: str | None = None) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=10)
        c.login(self.user, self.password)
        if folder:
            c.select_folder(folder)
        return c

    def append(self, raw: bytes | list[bytes], folder: str = "INBOX") -> None:
        messages = raw if isinstance(raw, list) else [raw]
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for message in messages:
                c.append(folder, message)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self.root, ignore_errors=True)
