"""TLS settings checked before gunicorn serves, and the context tweaks gunicorn's ``ssl_context`` hook applies.

gunicorn itself turns ``[tls]`` into ``certfile``, ``keyfile``, ``ca_certs`` and ``cert_reqs``
(``gunicorn.conf.py``); this module makes a bad setting stop start-up with one clear line instead of a worker
traceback at the first handshake.
"""

from __future__ import annotations

import os
import ssl

from app.config import ConfigError

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def check(tls: dict) -> None:
    """Raise ConfigError unless the configured files exist, are readable, and the key fits the certificate."""
    cert, key, ca = tls["cert_path"], tls["key_path"], tls["ca_cert_path"]
    if not cert:
        if key or ca or tls["require_client_cert"]:
            raise ConfigError("TLS settings need tls.cert_path (--tls-cert) as well")
        return
    if not key:
        raise ConfigError("tls.cert_path is set but tls.key_path (--tls-key) is not")
    if tls["require_client_cert"] and not ca:
        raise ConfigError("tls.require_client_cert needs tls.ca_cert_path (--tls-ca): the CA clients must be signed by")
    for name, path in (("tls.cert_path", cert), ("tls.key_path", key), ("tls.ca_cert_path", ca)):
        if not path:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"{name}: no such file: {path}")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{name}: cannot read {path} (permission denied)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(f"tls.key_path {key} does not match the certificate {cert}") from None
        raise ConfigError(f"cannot load the certificate {cert} with key {key}: {exc.reason or exc}") from None
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ConfigError(f"tls.ca_cert_path {ca} holds no usable CA certificate: {exc.reason or exc}") from None


def cert_reqs(tls: dict) -> int:
    return ssl.CERT_REQUIRED if tls["require_client_cert"] else ssl.CERT_NONE


def tune(context: ssl.SSLContext, tls: dict) -> ssl.SSLContext:
    context.minimum_version = MIN_VERSIONS[tls["min_version"]]
    return context
