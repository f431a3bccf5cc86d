"""``python -m app.server.healthcheck``: exit 0 when this host's server answers ``/health``, 1 otherwise.

For a container's ``HEALTHCHECK``: it reads the same settings as the server (port, TLS), so it asks the right
address in the right scheme. The server's certificate is not verified (it may be one of ``mock-openai certs``).
A server that requires client certificates refuses it: check such a server's port with a TCP probe instead.
"""

from __future__ import annotations

import ssl
import sys
import urllib.request

from app.config import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mock-openai: {exc}", file=sys.stderr)
        return 1
    scheme = "https" if settings.tls_enabled else "http"
    context = None
    if settings.tls_enabled:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    url = f"{scheme}://127.0.0.1:{settings.server['port']}/health"
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as reply:  # noqa: S310 (our own URL)
            return 0 if reply.status == 200 else 1
    except OSError as exc:
        print(f"mock-openai: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
