"""Debian's nginx, started for one test on a free loopback port with a site config from
``config/nginx/``, rendered with the test's ports; everything it writes stays under the
test's folder (temporary files, pid, logs on its stderr)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.pg import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
_LISTEN = re.compile(r"^(\s*)listen 80;$", re.MULTILINE)
_UPSTREAM = re.compile(r"^(\s*)server 127\.0\.0\.1:8080;", re.MULTILINE)


def available() -> bool:
    return Path(NGINX).exists()


def render(site: str, port: int, upstream_port: int) -> str:
    """The site config listening on ``127.0.0.1:port`` in front of ``upstream_port``;
    each address must be there exactly once (the example and the test stay in step)."""
    site, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{port};", site)
    site, upstreams = _UPSTREAM.subn(rf"\g<1>server 127.0.0.1:{upstream_port};", site)
    assert (listens, upstreams) == (1, 1), "config/nginx/minsheng.conf changed its addresses"
    return site


def _main_config(folder: Path, site_path: Path) -> str:
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would become "nobody", who cannot enter the test's folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            "error_log stderr notice;\nevents { worker_connections 256; }\n"
            f"http {{\n    access_log off;\n{temp}\n    include {site_path};\n}}\n")


class NginxServer:
    """``nginx -c`` a main config that includes the rendered site; stopped with SIGTERM."""

    def __init__(self, folder: Path, site: str, upstream_port: int) -> None:
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.site_path = folder / "minsheng.conf"
        self.site_path.write_text(render(site, self.port, upstream_port), encoding="utf-8")
        self.config_path = folder / "nginx.conf"
        self.config_path.write_text(_main_config(folder, self.site_path), encoding="utf-8")
        self.log_path = folder / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t``: the rendered config as nginx reads it."""
        return subprocess.run([NGINX, "-t", "-e", "stderr", "-p", str(self.folder), "-c",
                               str(self.config_path)], capture_output=True, text=True,
                              timeout=30)

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [NGINX, "-e", "stderr", "-p", str(self.folder), "-c", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
