"""What both Kubernetes clients share besides credentials: TLS, request headers, answers -> KubeApiError, paging.

The async client (aiohttp) and the blocking one (httpx) differ only in how bytes move; each calls these functions,
so a TLS option, an error field or the paging rule changes in one place.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from typing import Any

from llmasos.errors import KubeApiError
from llmasos.kube.config import Credentials

JSON = dict[str, Any]
PAGE_SIZE = 500


def tls_context(creds: Credentials) -> ssl.SSLContext | bool:
    """False for insecure-skip-tls-verify; True for the system CAs only; else a context with the kubeconfig's CA
    and client certificate. Python's ssl loads a client key only from a file: PEM data goes through a private
    temporary directory that is removed before this returns (the key never outlives the call on disk)."""
    if creds.insecure:
        return False
    cert = creds.client_certificate()
    if not (creds.ca_pem or creds.ca_file or cert):
        return True
    ctx = ssl.create_default_context(cafile=creds.ca_file,
                                     cadata=creds.ca_pem.decode() if creds.ca_pem else None)
    if cert is not None:
        if isinstance(cert[0], bytes) and isinstance(cert[1], bytes):
            with tempfile.TemporaryDirectory(prefix="llmasos-tls-") as tmp:  # mode 0700
                cert_path, key_path = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
                for path, data in ((cert_path, cert[0]), (key_path, cert[1])):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                ctx.load_cert_chain(cert_path, key_path)
        else:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def request_headers(creds: Credentials, body: Any, content_type: str) -> tuple[dict[str, str], bytes | None]:
    """Accept, Authorization and Content-Type headers, and the JSON-encoded body."""
    headers = {"Accept": "application/json"}
    token = creds.bearer()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is None:
        return headers, None
    headers["Content-Type"] = content_type
    return headers, json.dumps(body).encode()


def transport_error(method: str, path: str, exc: BaseException) -> KubeApiError:
    """No answer at all (connection refused, TLS failure, timeout): retryable, status 0."""
    return KubeApiError(f"{method} {path}: {type(exc).__name__}: {exc}", status=0)


def read_answer(method: str, path: str, status: int, raw: bytes, creds: Credentials | None = None) -> JSON:
    """A 2xx answer's JSON ({} when empty); any other status as KubeApiError with the API's message and reason.
    A 401 also tells the credentials, so an exec plugin's expired token is fetched again."""
    if status >= 300:
        if status == 401 and creds is not None:
            creds.unauthorized()
        text = raw.decode(errors="replace")
        try:
            answer = json.loads(raw)
            message, reason = answer.get("message", text), answer.get("reason", "")
        except (ValueError, AttributeError):
            message, reason = text[:300], ""
        raise KubeApiError(f"{method} {path}: {status} {message}", status=status, reason=reason)
    if not raw:
        return {}
    try:
        result: JSON = json.loads(raw)
    except ValueError as exc:
        raise KubeApiError(f"{method} {path}: the answer is not JSON: {raw[:200]!r}", status=0) from exc
    return result


def list_params(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    """The first page's query of a list call."""
    params = {"limit": str(PAGE_SIZE)}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def next_page(params: dict[str, str], page: JSON) -> dict[str, str] | None:
    """The next page's query, or None when `page` was the last."""
    cont = (page.get("metadata") or {}).get("continue")
    return {**params, "continue": cont} if cont else None
