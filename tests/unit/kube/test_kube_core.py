"""The Kubernetes client core: kubeconfig data stays in memory, exec plugins, error mapping, paging."""

from __future__ import annotations

import base64
import json
import ssl
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmasos.agent.kube_sync import SyncKubeClient
from llmasos.errors import ConfigError, KubeApiError
from llmasos.kube.config import Credentials, load_kubeconfig
from llmasos.kube.core import next_page, read_answer, tls_context
from llmasos.kube.execcred import ExecConfig, ExecProvider, parse_exec_credential
from llmasos.kube.resources import LLMJOBS, PODS


def self_signed() -> tuple[bytes, bytes]:
    """A throwaway CA-less certificate and key (PEM), as a kubeconfig's inline data would hold."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmasos-test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443/", **(cluster or {})}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_inline_certificates_never_leave_a_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded client keys were written to temporary files that were never deleted (issue 17)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cert, key = self_signed()
    creds = load_kubeconfig(kubeconfig(tmp_path / "kc", {"client-certificate-data": b64(cert),
                                                          "client-key-data": b64(key)},
                                       {"certificate-authority-data": b64(cert)}))
    assert (creds.server, creds.cert_pem, creds.key_pem, creds.ca_pem) == ("https://127.0.0.1:6443", cert, key, cert)
    assert (creds.cert_file, creds.key_file, creds.ca_file) == (None, None, None)
    ctx = tls_context(creds)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "llmasos-test"),),)
    assert list(scratch.iterdir()) == []  # the key went through a private directory that is gone


def test_file_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    creds = load_kubeconfig(kubeconfig(tmp_path / "kc", {"client-certificate": "pki/a.crt", "client-key": "/abs/a.key",
                                                          "token": "t"}))
    assert (creds.cert_file, creds.key_file, creds.bearer()) == (str(tmp_path / "pki/a.crt"), "/abs/a.key", "t")
    assert tls_context(Credentials("https://x", insecure=True)) is False
    assert tls_context(Credentials("https://x")) is True


def test_bad_base64_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="client-key-data is not base64"):
        load_kubeconfig(kubeconfig(tmp_path / "kc", {"client-key-data": "%%%"}))


# --------------------------------------------------------------------------------------------- exec plugins
def plugin(tmp_path: Path, status: dict[str, Any], api: str = "client.authentication.k8s.io/v1") -> Path:
    """A real executable plugin: appends its KUBERNETES_EXEC_INFO and args to calls.log, prints an ExecCredential."""
    script = tmp_path / "plugin.sh"
    answer = json.dumps({"apiVersion": api, "kind": "ExecCredential", "status": status})
    script.write_text(f"#!/bin/sh\necho \"$KUBERNETES_EXEC_INFO $MY_ENV $*\" >> {tmp_path}/calls.log\n"
                      f"cat <<'EOF'\n{answer}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def exec_user(script: Path, api: str = "client.authentication.k8s.io/v1") -> dict[str, Any]:
    return {"exec": {"apiVersion": api, "command": str(script), "args": ["--cluster", "x"],
                     "env": [{"name": "MY_ENV", "value": "from-kubeconfig"}], "interactiveMode": "Never"}}


def test_exec_plugin_token_is_fetched_once_and_again_after_a_401(tmp_path: Path) -> None:
    script = plugin(tmp_path, {"token": "tok-1"})
    creds = load_kubeconfig(kubeconfig(tmp_path / "kc", exec_user(script)))
    assert creds.bearer() == "tok-1"
    assert creds.bearer() == "tok-1"
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) == 1
    exec_info, rest = calls[0].split("}} ", 1)
    assert json.loads(exec_info + "}}")["spec"] == {"interactive": False}
    assert rest == "from-kubeconfig --cluster x"  # the kubeconfig's env and args
    with pytest.raises(KubeApiError):
        read_answer("GET", "/api", 401, b'{"message": "Unauthorized"}', creds)
    assert creds.bearer() == "tok-1"
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2


def test_exec_credential_is_refreshed_before_it_expires() -> None:
    now = [1_000_000.0]
    expiry = datetime.fromtimestamp(now[0] + 600, UTC).isoformat()
    answers = iter([{"token": "a", "expirationTimestamp": expiry}, {"token": "b"}])

    def run(argv: list[str], env: Any) -> bytes:
        return json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                           "status": next(answers)}).encode()

    provider = ExecProvider(ExecConfig("p", api_version="client.authentication.k8s.io/v1beta1"), run=run,
                            clock=lambda: now[0])
    assert provider.credential().token == "a"
    now[0] += 499
    assert provider.credential().token == "a"
    now[0] += 50  # within a minute of the expiry
    assert provider.credential().token == "b"


def test_exec_plugin_client_certificate_builds_the_tls_context(tmp_path: Path) -> None:
    cert, key = self_signed()
    script = plugin(tmp_path, {"clientCertificateData": cert.decode(), "clientKeyData": key.decode()})
    creds = load_kubeconfig(kubeconfig(tmp_path / "kc", exec_user(script)))
    assert creds.bearer() is None
    assert creds.client_certificate() == (cert, key)
    assert isinstance(tls_context(creds), ssl.SSLContext)


@pytest.mark.parametrize(("stdout", "message"), [
    (b"not json", "not JSON"),
    (b'{"kind": "Other"}', "not an ExecCredential"),
    (b'{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "status": {"token": "t"}}',
     "answered"),
    (b'{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {}}', "neither"),
    (b'{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": '
     b'{"token": "t", "expirationTimestamp": "2000-01-01T00:00:00Z"}}', "expired"),
])
def test_a_bad_plugin_answer_is_a_config_error(stdout: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_exec_credential(stdout, "client.authentication.k8s.io/v1", datetime.now(UTC).timestamp())


def test_a_failing_or_missing_plugin_is_a_config_error(tmp_path: Path) -> None:
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(ConfigError, match="exited with 3"):
        load_kubeconfig(kubeconfig(tmp_path / "kc", exec_user(script))).bearer()
    with pytest.raises(ConfigError, match="not found"):
        load_kubeconfig(kubeconfig(tmp_path / "kc", exec_user(tmp_path / "nope"))).bearer()
    with pytest.raises(ConfigError, match="apiVersion"):
        load_kubeconfig(kubeconfig(tmp_path / "kc", exec_user(script, api="client.authentication.k8s.io/v1alpha1")))


# --------------------------------------------------------------------------------------------- answers, paging
@pytest.mark.parametrize(("status", "raw", "retryable", "reason"), [
    (404, b'{"message": "llmjobs \\"x\\" not found", "reason": "NotFound"}', False, "NotFound"),
    (409, b'{"message": "conflict", "reason": "Conflict"}', True, "Conflict"),
    (503, b"<html>upstream</html>", True, ""),
    (422, b'{"message": "invalid", "reason": "Invalid"}', False, "Invalid"),
])
def test_answers_map_onto_kube_api_errors(status: int, raw: bytes, retryable: bool, reason: str) -> None:
    with pytest.raises(KubeApiError) as info:
        read_answer("GET", "/x", status, raw)
    assert (info.value.status, info.value.retryable, info.value.reason) == (status, retryable, reason)
    assert read_answer("GET", "/x", 200, b"") == {}
    with pytest.raises(KubeApiError, match="not JSON"):
        read_answer("GET", "/x", 200, b"<html>")


def test_both_clients_page_through_a_list() -> None:
    assert next_page({"limit": "500"}, {"metadata": {"continue": "c1"}}) == {"limit": "500", "continue": "c1"}
    assert next_page({"limit": "500"}, {"metadata": {}}) is None
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.params))
        page = request.url.params.get("continue")
        if page is None:
            return httpx.Response(200, json={"items": [{"n": 1}], "metadata": {"continue": "p2"}})
        return httpx.Response(200, json={"items": [{"n": 2}], "metadata": {}})

    client = SyncKubeClient(Credentials("https://k"))
    # the client's own transport, mocked
    client._http = httpx.Client(base_url="https://k", transport=httpx.MockTransport(answer))
    assert client.list(PODS, "ns", label_selector="a=b") == [{"n": 1}, {"n": 2}]
    assert seen == ["limit=500&labelSelector=a%3Db", "limit=500&labelSelector=a%3Db&continue=p2"]
    client.close()


def test_the_llmjob_resource_comes_from_the_api_constants() -> None:
    from llmasos.api import constants as c

    assert (LLMJOBS.group, LLMJOBS.version, LLMJOBS.plural) == (c.GROUP, c.VERSION, c.PLURAL)
    assert LLMJOBS.path("ns", "x", "status") == "/apis/llmasos.io/v1alpha1/namespaces/ns/llmjobs/x/status"
