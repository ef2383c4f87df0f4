"""TLS to PostgreSQL as a managed database expects it: a second throw-away
server with `ssl = on`, accepting TCP only over TLS (`hostssl`), with a CA and
a server certificate for `localhost` made here with openssl. verify-full with
the right CA connects; a wrong CA or a host name the certificate does not
name is refused in one line, and the sidecar starts degraded (decisions
local), as with a wrong password."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY

BIN = os.environ["FUSEBOX_TEST_PGBIN"]
OWNER = os.environ.get("FUSEBOX_TEST_PGUSER", "")


def as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", OWNER, "--"] + command if OWNER else command


def openssl(*arguments: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


def certificate_authority(folder: pathlib.Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_postgres():
    root = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-pgtls-"))
    os.chmod(root, 0o755)
    certs = root / "certs"
    certs.mkdir()
    certificate_authority(certs, "ca")
    certificate_authority(certs, "other-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr", cwd=certs)
    (certs / "san.ext").write_text("subjectAltName = DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.crt", cwd=certs)
    data, run = root / "data", root / "run"
    run.mkdir()
    if OWNER:
        shutil.chown(root, OWNER)
        shutil.chown(run, OWNER)
        for name in ("server.key", "server.crt"):
            shutil.chown(certs / name, OWNER)
    os.chmod(certs / "server.key", 0o600)
    subprocess.run(as_owner([f"{BIN}/initdb", "-D", str(data), "-U", "fusebox", "-A", "trust", "--no-sync"]),
                   check=True, capture_output=True, cwd="/")
    port = free_port()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"listen_addresses = 'localhost'\nport = {port}\nunix_socket_directories = '{run}'\nfsync = off\n"
                   f"ssl = on\nssl_cert_file = '{certs / 'server.crt'}'\nssl_key_file = '{certs / 'server.key'}'\n")
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n")
    subprocess.run(as_owner([f"{BIN}/pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "start"]),
                   check=True, capture_output=True, cwd="/")
    try:
        yield port, certs
    finally:
        subprocess.run(as_owner([f"{BIN}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, cwd="/")
        shutil.rmtree(root, ignore_errors=True)


def serve(url: str) -> tuple[subprocess.Popen, pathlib.Path]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-tls-"))
    (folder / "fusebox.yaml").write_text(f"""
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
fleet: {{ postgres: {json.dumps(url)}, name: tls }}
breakers: {{ openai: {{}} }}
""")
    log = folder / "fusebox.log"
    process = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=folder, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    return process, folder


def outcome(url: str) -> dict:
    """The first fleet_connected or fleet_unreachable line, with proof that decisions work meanwhile."""
    process, folder = serve(url)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            for line in (folder / "fusebox.log").read_text().splitlines():
                event = json.loads(line) if line.startswith("{") else {}
                if event.get("event") in ("fleet_connected", "fleet_unreachable"):
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(folder / "fusebox.sock"))
                        s.sendall(b'{"op":"acquire","breaker":"openai"}\n')
                        event["acquire"] = json.loads(s.makefile().readline())
                    return event
            time.sleep(0.05)  # poll
        raise AssertionError((folder / "fusebox.log").read_text()[-2000:])
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


def test_verify_full_with_the_right_ca_connects(tls_postgres):
    port, certs = tls_postgres
    event = outcome(f"postgresql://fusebox@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={certs / 'ca.crt'}")
    assert event["event"] == "fleet_connected", event


@pytest.mark.parametrize("case", ["wrong CA", "wrong host name", "plain text"])
def test_a_wrong_ca_a_wrong_host_name_or_no_tls_is_refused_in_one_line_and_the_sidecar_starts_degraded(tls_postgres, case):
    port, certs = tls_postgres
    url = {
        "wrong CA": f"postgresql://fusebox@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={certs / 'other-ca.crt'}",
        # The certificate names localhost only: reached by address, its name does not match.
        "wrong host name": f"postgresql://fusebox@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={certs / 'ca.crt'}",
        "plain text": f"postgresql://fusebox@localhost:{port}/postgres?sslmode=disable",
    }[case]
    event = outcome(url)
    assert event["event"] == "fleet_unreachable", event
    reason = event["reason"]
    assert "\n" not in reason and len(reason) < 600, reason
    if case != "plain text":
        assert "TLS" in reason, reason
    assert event["acquire"]["ok"] and event["acquire"]["allowed"], "decisions stay local"
    print(f"\n{case}: {reason}")
