"""TLS and mutual TLS, proven with real handshakes against real gunicorn workers (and a real nginx)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import openai
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.server import certs as certs_module
from tests.conftest import MOCK_OPENAI, clean_env, component, free_port
from tests.sse import parse_sse

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "Hello"}]


class Certs:
    def __init__(self, folder: Path):
        self.folder = folder
        for name in ("ca", "server", "client"):
            setattr(self, f"{name}_crt", str(folder / f"{name}.crt"))
            setattr(self, f"{name}_key", str(folder / f"{name}.key"))

    @property
    def client(self) -> tuple[str, str]:
        return self.client_crt, self.client_key


def make_certs(folder: Path, *extra: str) -> Certs:
    result = subprocess.run(
        [str(MOCK_OPENAI), "certs", "--out", str(folder), *extra], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return Certs(folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Certificates made by ``mock-openai certs``, another CA's, and an expired client certificate."""
    good = make_certs(tmp_path_factory.mktemp("certs"))
    other = make_certs(tmp_path_factory.mktemp("other-ca"))
    ca = certs_module.Issued(
        x509.load_pem_x509_certificate(Path(good.ca_crt).read_bytes()),
        serialization.load_pem_private_key(Path(good.ca_key).read_bytes(), password=None),
    )
    expired = certs_module.issue(
        ca, "expired client", "client", days=1, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    )
    folder = tmp_path_factory.mktemp("expired")
    certs_module.write_pair(expired, folder / "client.crt", folder / "client.key")
    return {"good": good, "other": other, "expired": (str(folder / "client.crt"), str(folder / "client.key"))}


@pytest.fixture(scope="module")
def mtls_server(pki, tmp_path_factory):
    from tests.conftest import LiveServer

    good = pki["good"]
    args = ["-w", "1", "--inter-token-latency", "1", "--log-level", "info"]
    args += ["--tls-cert", good.server_crt, "--tls-key", good.server_key, "--tls-ca", good.ca_crt]
    args += ["--require-client-cert"]
    server = LiveServer(args, {"MOCK_OPENAI_SERVER_ACCESS_LOG": "true"}, tmp_path_factory.mktemp("mtls"), "https")
    server.base_url = f"https://localhost:{server.port}"  # the name in the server certificate
    yield server
    server.stop()


def refused(call) -> None:
    """The connection fails: in the handshake, or (TLS 1.3, where the client's certificate is checked after
    the client has finished) on the first read."""
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        call()


# --- certificates ---------------------------------------------------------------------------------------


def test_certs_command_makes_a_ca_server_and_client_with_private_keys(pki):
    good = pki["good"]
    for path in (good.ca_key, good.server_key, good.client_key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    server = x509.load_pem_x509_certificate(Path(good.server_crt).read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    ca = x509.load_pem_x509_certificate(Path(good.ca_crt).read_bytes())
    server.verify_directly_issued_by(ca)
    x509.load_pem_x509_certificate(Path(good.client_crt).read_bytes()).verify_directly_issued_by(ca)


def test_certs_command_never_overwrites_without_force(tmp_path):
    make_certs(tmp_path)
    before = (tmp_path / "ca.crt").read_bytes()
    result = subprocess.run([str(MOCK_OPENAI), "certs", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "--force" in result.stderr
    assert (tmp_path / "ca.crt").read_bytes() == before
    make_certs(tmp_path, "--force", "--days", "30", "--hosts", "mock.internal,10.0.0.7")
    server = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    assert (tmp_path / "ca.crt").read_bytes() != before
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mock.internal"]
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days == 30


# --- mutual TLS -----------------------------------------------------------------------------------------


def test_client_with_a_valid_certificate_gets_every_endpoint(mtls_server, pki):
    good, base = pki["good"], mtls_server.base_url
    # verify= on each call: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
    tls = {"verify": good.ca_crt, "cert": good.client, "timeout": 5}
    assert requests.get(base + "/health", **tls).json()["status"] == "healthy"
    assert requests.get(base + "/v1/models", **tls).ok
    reply = requests.post(
        base + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 3}, **tls
    )
    assert reply.json()["usage"]["completion_tokens"] == 3
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = parse_sse(requests.post(base + "/v1/chat/completions", json=body, **tls).content)
    assert events[-2]["usage"]["completion_tokens"] == 5


def test_the_journal_records_the_client_certificate_subject(mtls_server, pki):
    good = pki["good"]
    tls = {"verify": good.ca_crt, "cert": good.client, "timeout": 5}
    requests.post(
        mtls_server.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 2},
        **tls,
    )
    entry = requests.get(mtls_server.base_url + "/_mock/requests", **tls).json()["data"][0]
    assert entry["client_cert"] == "CN=mock-openai client,O=mock-openai test"


def test_client_without_a_certificate_is_refused_before_the_app(mtls_server, pki):
    refused(lambda: requests.get(mtls_server.base_url + "/v1/models", verify=pki["good"].ca_crt, timeout=5))


def test_certificate_from_another_ca_is_refused(mtls_server, pki):
    other = pki["other"].client
    refused(lambda: requests.get(mtls_server.base_url + "/health", verify=pki["good"].ca_crt, cert=other, timeout=5))


def test_expired_certificate_is_refused(mtls_server, pki):
    expired = pki["expired"]
    refused(lambda: requests.get(mtls_server.base_url + "/health", verify=pki["good"].ca_crt, cert=expired, timeout=5))


def test_plain_http_to_the_tls_port_gets_no_answer_from_the_app(mtls_server):
    with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            answer = sock.recv(4096)  # a TLS alert, or nothing
        except ConnectionResetError:
            answer = b""
    assert b"healthy" not in answer and not answer.startswith(b"HTTP/1.1 200")


def test_refused_clients_reach_no_view_and_cost_one_log_line_each(mtls_server, pki):
    test_client_without_a_certificate_is_refused_before_the_app(mtls_server, pki)
    test_plain_http_to_the_tls_port_gets_no_answer_from_the_app(mtls_server)
    time.sleep(0.2)
    log = mtls_server.output()
    assert "Traceback" not in log
    refusals = [line for line in log.splitlines() if "TLS handshake with 127.0.0.1:" in line]
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in line for line in refusals)
    assert any("HTTP_REQUEST" in line for line in refusals)
    assert all("[INFO]" in line for line in refusals)
    # The access log names only requests that reached the app: every one from the client with a certificate.
    access = [line for line in log.splitlines() if '"GET /health' in line or '"GET /v1/models' in line]
    assert all(" 200 " in line for line in access)


def test_a_silent_client_cannot_hold_a_handshake_open(start_server, pki):
    good = pki["good"]
    server = start_server(
        "-w",
        "1",
        "--client-request-timeout",
        "1s",
        "--tls-cert",
        good.server_crt,
        "--tls-key",
        good.server_key,
        scheme="https",
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""
        # closed after the 1 s timeout (the default is 600 s); the margin is for a suite loading both CPUs
        assert time.monotonic() - start < 5


def sdk_client(base_url: str, pki) -> openai.OpenAI:
    context = ssl.create_default_context(cafile=pki["good"].ca_crt)
    context.load_cert_chain(*pki["good"].client)
    return openai.OpenAI(
        base_url=base_url + "/v1",
        api_key="sk-test",
        http_client=openai.DefaultHttpxClient(verify=context),
        _strict_response_validation=True,
        max_retries=0,
    )


def test_openai_sdk_over_mutual_tls(mtls_server, pki):
    client = sdk_client(mtls_server.base_url, pki)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4).usage.total_tokens > 4
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=4, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"


def test_openai_sdk_with_verify_and_cert_arguments(mtls_server, pki):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # httpx2 prefers an SSLContext, but takes both
        http_client = openai.DefaultHttpxClient(
            verify=ssl.create_default_context(cafile=pki["good"].ca_crt), cert=pki["good"].client
        )
    client = openai.OpenAI(base_url=mtls_server.base_url + "/v1", api_key="sk", http_client=http_client, max_retries=0)
    assert [m.id for m in client.models.list()]


def test_openai_sdk_without_a_certificate_fails(mtls_server, pki):
    client = openai.OpenAI(
        base_url=mtls_server.base_url + "/v1",
        api_key="sk",
        http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=pki["good"].ca_crt)),
        max_retries=0,
    )
    with pytest.raises(openai.APIConnectionError):
        client.models.list()


def test_health_with_curl_as_in_the_readme(mtls_server, pki):
    good = pki["good"]
    result = subprocess.run(
        [component("curl"), "-sS", "--cacert", good.ca_crt, "--cert", good.client_crt, "--key", good.client_key,
         mtls_server.base_url + "/health"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"status":"healthy"' in result.stdout


def test_tls_without_client_certificates(start_server, pki):
    good = pki["good"]
    server = start_server("-w", "1", "--tls-cert", good.server_crt, "--tls-key", good.server_key, scheme="https")
    assert requests.get(f"https://localhost:{server.port}/health", verify=good.ca_crt, timeout=5).ok


def test_a_paced_stream_over_tls_goes_out_on_its_deadlines_record_by_record(start_server, pki):
    """Over TLS too the worker's timer writes a paced stream's tokens (app/server/pacing.py): the SDK reads every
    token, each journaled at its time or after it, never before, and the stream ends as it should."""
    good = pki["good"]
    server = start_server(
        "-w", "1", "--inter-token-latency", "20", "--tls-cert", good.server_crt, "--tls-key", good.server_key,
        scheme="https",
    )  # fmt: skip
    base = f"https://localhost:{server.port}"
    client = openai.OpenAI(
        base_url=base + "/v1", api_key="sk-test", http_client=openai.DefaultHttpxClient(verify=good.ca_crt)
    )
    tokens, itl_ms = 10, 20
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=tokens, stream=True, extra_headers={"X-Mock-Test-Id": "tls"}
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) == tokens
    listed = requests.get(base + "/_mock/requests", params={"test_id": "tls"}, verify=good.ca_crt, timeout=5).json()
    entry = requests.get(f"{base}/_mock/requests/{listed['data'][0]['id']}", verify=good.ca_crt, timeout=5).json()
    assert entry["response"]["ending"] == "done"
    assert entry["response"]["text"] == "".join(pieces)
    times = [e["t_ms"] for e in entry["response"]["stream_events"] if isinstance(e["data"], dict)]
    first, token_times = times[0], times[1 : tokens + 1]  # the head (the role's chunk) goes with token 0
    # Token k is due k ITLs after token 0 was due. Token 0's write may itself go out late on a busy machine
    # (1.01 ms once, in CI) while the later ones keep to the plan: a token a quarter of an ITL early fails.
    assert all(t >= first + k * itl_ms - itl_ms / 4 for k, t in enumerate(token_times)), times
    assert len(set(token_times[:-1])) == tokens - 1, times


def test_minimum_tls_version(start_server, pki):
    good = pki["good"]
    server = start_server(
        "-w", "1", "--tls-cert", good.server_crt, "--tls-key", good.server_key,
        env={"MOCK_OPENAI_TLS_MIN_VERSION": "1.3"}, scheme="https",
    )  # fmt: skip
    tls12 = ssl.create_default_context(cafile=good.ca_crt)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        tls12.wrap_socket(raw, server_hostname="localhost")
    tls13 = ssl.create_default_context(cafile=good.ca_crt)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with tls13.wrap_socket(raw, server_hostname="localhost") as wrapped:
            assert wrapped.version() == "TLSv1.3"


# --- start-up checks ------------------------------------------------------------------------------------


def start_up_error(*flags: str, as_user: list[str] = ()) -> str:
    result = subprocess.run([*as_user, str(MOCK_OPENAI), "-p", str(free_port()), *flags], env=clean_env(),
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def test_missing_certificate_file_stops_start_up(pki, tmp_path):
    message = start_up_error("--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", pki["good"].server_key)
    assert message == f"mock-openai: tls.cert_path: no such file: {tmp_path / 'nope.crt'}"


def test_key_that_does_not_match_stops_start_up(pki):
    good = pki["good"]
    message = start_up_error("--tls-cert", good.server_crt, "--tls-key", good.client_key)
    assert message == f"mock-openai: tls.key_path {good.client_key} does not match the certificate {good.server_crt}"


def test_client_certificates_need_a_ca(pki):
    good = pki["good"]
    message = start_up_error("--tls-cert", good.server_crt, "--tls-key", good.server_key, "--require-client-cert")
    assert "tls.require_client_cert needs tls.ca_cert_path" in message


def test_unreadable_key_stops_start_up(pki):
    # Root reads any file: as root (CI), the server runs as nobody, in a folder that nobody may enter.
    as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="mock-openai-unreadable-"))
    try:
        folder.chmod(0o755)
        key, cert = folder / "server.key", folder / "server.crt"
        shutil.copy(pki["good"].server_key, key)
        shutil.copy(pki["good"].server_crt, cert)
        cert.chmod(0o644)
        key.chmod(0)
        message = start_up_error("--tls-cert", str(cert), "--tls-key", str(key), as_user=as_user)
    finally:
        shutil.rmtree(folder)
    assert message == f"mock-openai: tls.key_path: cannot read {key} (permission denied)"


# --- behind an mTLS reverse proxy ------------------------------------------------------------------------


def test_through_nginx_terminating_plain_http_and_forwarding_over_mtls(mtls_server, pki, tmp_path):
    good = pki["good"]
    port = free_port()
    for folder in ("logs", "tmp"):
        (tmp_path / folder).mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path}/logs/access.log;
    client_body_temp_path {tmp_path}/tmp/body;
    proxy_temp_path {tmp_path}/tmp/proxy;
    fastcgi_temp_path {tmp_path}/tmp/fastcgi;
    uwsgi_temp_path {tmp_path}/tmp/uwsgi;
    scgi_temp_path {tmp_path}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://127.0.0.1:{mtls_server.port};
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_ssl_certificate {good.client_crt};
            proxy_ssl_certificate_key {good.client_key};
            proxy_ssl_trusted_certificate {good.ca_crt};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
        }}
    }}
}}
"""
    )
    nginx = subprocess.Popen(
        [component("nginx"), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert nginx.poll() is None, nginx.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/health", timeout=5).json()["status"] == "healthy"
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk", _strict_response_validation=True, max_retries=0)
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=3).usage
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=6, stream=True)
        assert [c.choices[0].finish_reason for c in stream][-1] == "length"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
