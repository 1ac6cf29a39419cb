"""The example deployment files in docs/deploy/ are valid: nginx accepts the site config
(`nginx -t`), and every systemd unit restarts its process (the fault tests rely on it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ..servers import REPO

DEPLOY = REPO / "docs" / "deploy"


@pytest.mark.skipif(
    shutil.which("nginx") is None, reason="nginx is not installed (apt-get install nginx-light)"
)
def test_nginx_accepts_the_site_config(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=glimpse.example.com",
            "-keyout",
            str(tls / "privkey.pem"),
            "-out",
            str(tls / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    site = (DEPLOY / "nginx-glimpse.conf").read_text().replace("/etc/glimpse/tls", str(tls))
    (tmp_path / "glimpse.conf").write_text(site)
    # The site goes inside http {} as it would under /etc/nginx/conf.d/.
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path}/access.log;\n"
        f"    client_body_temp_path {tmp_path}/body;\n"
        f"    proxy_temp_path {tmp_path}/proxy;\n"
        f"    include {tmp_path}/glimpse.conf;\n"
        "}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_units_parse():
    for unit in sorted(DEPLOY.glob("*.service")):
        text = unit.read_text()
        assert "ExecStart=" in text and "Restart=always" in text, unit.name
