"""Throwaway certificates for TLS tests, made with the `openssl` command-line tool."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


@dataclass(frozen=True)
class TestPKI:
    """PEM paths: a CA, a server cert for 127.0.0.1 and a client cert it signed, a server
    cert naming another host, and an unrelated CA that trusts none of them."""

    __test__ = False  # not a test class, despite its name

    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    wrong_host_cert: str
    wrong_host_key: str
    other_ca_file: str


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the TLS tests need the openssl tool (apt-get install -y openssl)")
    subprocess.run([binary, *args], check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *_EC_KEY, "-days", "2", "-subj", f"/CN=guard-core test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def _make_leaf(
    directory: Path, name: str, ca: tuple[Path, Path], extensions: list[str]
) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text("\n".join(["basicConstraints=CA:FALSE", *extensions]) + "\n")
    _openssl("req", *_EC_KEY, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext_file), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def make_test_pki(directory: Path) -> TestPKI:
    """Generate every certificate and key of `TestPKI` under `directory`."""
    ca = _make_ca(directory, "ca")
    other_ca = _make_ca(directory, "other-ca")
    server_usage = ["keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth"]
    server = _make_leaf(directory, "server", ca, ["subjectAltName=IP:127.0.0.1", *server_usage])
    wrong_host = _make_leaf(
        directory, "wrong-host", ca, ["subjectAltName=DNS:guard-core.invalid", *server_usage]
    )
    client = _make_leaf(
        directory,
        "client",
        ca,
        ["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"],
    )
    return TestPKI(
        ca_file=str(ca[0]),
        server_cert=str(server[0]),
        server_key=str(server[1]),
        client_cert=str(client[0]),
        client_key=str(client[1]),
        wrong_host_cert=str(wrong_host[0]),
        wrong_host_key=str(wrong_host[1]),
        other_ca_file=str(other_ca[0]),
    )
