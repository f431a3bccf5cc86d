"""``mock-openai certs``: a test CA, a server certificate and a client certificate, made with ``cryptography``.

    mock-openai certs [--out certs/] [--days N] [--hosts localhost,127.0.0.1,::1] [--force]

Writes ``ca.crt``/``ca.key``, ``server.crt``/``server.key`` (with the hosts as subject alternative names) and
``client.crt``/``client.key``, all PEM, keys readable by their owner only (0600). Existing files are never
overwritten unless ``--force`` is given. The keys are ECDSA P-256: small, and fast to handshake with.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mock-openai test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """Signatures (ECDSA keys sign; they never encipher), and for a CA, certificates and CRLs too."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _validity(days: int, not_before: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew
    return start, start + dt.timedelta(days=days)


def make_ca(common_name: str = "mock-openai test CA", days: int = 825) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, None)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    usage: str,
    hosts: tuple[str, ...] = (),
    days: int = 825,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A leaf certificate signed by ``ca``: ``usage`` is ``"server"`` or ``"client"``."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, not_before)
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_pair(issued: Issued, certificate_path: Path, key_path: Path) -> None:
    """The certificate (0644) and its unencrypted key (0600), both PEM."""
    certificate_path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    key_bytes = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.unlink(missing_ok=True)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)


def generate(out: Path, hosts: tuple[str, ...], days: int, force: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass --force to replace them")
    ca = make_ca(days=days)
    server = issue(ca, hosts[0] if hosts else "localhost", "server", hosts, days)
    client = issue(ca, "mock-openai client", "client", (), days)
    for stem, issued in (("ca", ca), ("server", server), ("client", client)):
        write_pair(issued, out / f"{stem}.crt", out / f"{stem}.key")
    return [out / name for name in FILES]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mock-openai certs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("certs"), help="folder to write to [./certs]")
    parser.add_argument("--days", type=int, default=825, help="validity in days [825]")
    parser.add_argument(
        "--hosts",
        default=",".join(DEFAULT_HOSTS),
        help="names and addresses the server certificate is for [localhost,127.0.0.1,::1]",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    hosts = tuple(h.strip() for h in args.hosts.split(",") if h.strip())
    if args.days < 1 or not hosts:
        parser.error("--days must be at least 1 and --hosts must name at least one host")
    try:
        written = generate(args.out, hosts, args.days, args.force)
    except (FileExistsError, OSError) as exc:
        print(f"mock-openai certs: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
