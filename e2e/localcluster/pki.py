"""Certificates for the local control plane: one CA, a serving cert, client certs and the ServiceAccount key.

The API server runs with TLS and RBAC like a production one, so every client authenticates with a client
certificate signed by this CA (the admin as system:masters, the controller-manager and scheduler as their own
system users) or with a ServiceAccount token signed by the key generated here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from e2e.localcluster.nodes import REAL_NODE_NAME

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate to issue: file stem, user name (CN) and groups (O)."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS: tuple[ClientIdentity, ...] = (
    ClientIdentity("admin", "kubernetes-admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    # kwok stands in for every kubelet: it writes node and pod status for hundreds of nodes and deletes pods.
    ClientIdentity("kwok", "kwok-controller", ("system:masters",)),
    # Distinct identities so the API server's audit log can count requests per client (bench/operator_scale.py).
    ClientIdentity("operator", "llmasos-operator-dev", ("system:masters",)),
    ClientIdentity("bench", "llmasos-bench", ("system:masters",)),
    # The real node (e2e/localcluster/realnode.py): its kubelet under the Node authorizer, kube-proxy and CoreDNS
    # under their own users, and the API server's client identity towards the kubelet (logs, exec).
    ClientIdentity("kubelet", f"system:node:{REAL_NODE_NAME}", ("system:nodes",)),
    ClientIdentity("kube-proxy", "system:kube-proxy"),
    ClientIdentity("coredns", "llmasos-coredns"),
    ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    # The ecosystem controllers (e2e/localcluster/ecosystem.py): Kueue and KubeRay's ray-operator.
    ClientIdentity("kueue", "kueue-controller-manager", ("system:masters",)),
    ClientIdentity("ray-operator", "kuberay-operator", ("system:masters",)),
)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def ensure_pki(pki_dir: Path, serving_ips: tuple[str, ...] = ()) -> None:
    """Create the CA, serving and client certificates and the ServiceAccount key unless they already exist.

    `serving_ips` are addresses besides 127.0.0.1 that the API server is reached at (the real node reaches it on
    its side of the node's veth pair); a serving certificate that lacks one is issued anew under the same CA."""
    if (pki_dir / ".complete").exists():
        _ensure_clients(pki_dir)
        _ensure_serving(pki_dir, serving_ips)
        return
    pki_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = _name("llmasos-local-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY * 5)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki_dir / "ca.key", ca_key)
    _write_cert(pki_dir / "ca.crt", ca_cert)

    _issue_serving(pki_dir, ca_cert, ca_key, serving_ips)


    _ensure_clients(pki_dir, ca_cert, ca_key)
    sa_key = _key()
    _write_key(pki_dir / "sa.key", sa_key)
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (pki_dir / ".complete").touch()


def _ensure_clients(pki_dir: Path, ca_cert: x509.Certificate | None = None,
                    ca_key: rsa.RSAPrivateKey | None = None) -> None:
    """Issue any client certificate in CLIENTS that is missing (new identities appear without a new CA)."""
    missing = [c for c in CLIENTS if not (pki_dir / f"{c.stem}.crt").exists()]
    if not missing:
        return
    if ca_cert is None or ca_key is None:
        ca_cert = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
        loaded = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        ca_key = loaded
    for client in missing:
        key = _key()
        cert = _issue(_name(client.user, client.groups), key, ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
        _write_key(pki_dir / f"{client.stem}.key", key)
        _write_cert(pki_dir / f"{client.stem}.crt", cert)


def _serving_sans(ips: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local")
    ]
    for ip in ("127.0.0.1", "10.0.0.1", *ips):
        names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return names


def _issue_serving(pki_dir: Path, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey,
                   ips: tuple[str, ...]) -> None:
    serving_key = _key()
    serving = _issue(_name("kube-apiserver"), serving_key, ca_cert, ca_key, ExtendedKeyUsageOID.SERVER_AUTH,
                     _serving_sans(ips))
    _write_key(pki_dir / "apiserver.key", serving_key)
    _write_cert(pki_dir / "apiserver.crt", serving)


def _ensure_serving(pki_dir: Path, ips: tuple[str, ...]) -> None:
    """Issue the API server's serving certificate anew if it lacks one of `ips` (same CA, so clients still trust it)."""
    cert = x509.load_pem_x509_certificate((pki_dir / "apiserver.crt").read_bytes())
    have = {str(a) for a in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            .get_values_for_type(x509.IPAddress)}
    if set(ips) <= have:
        return
    ca_cert = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    loaded = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    _issue_serving(pki_dir, ca_cert, loaded, tuple(sorted(have - {"127.0.0.1", "10.0.0.1"} | set(ips))))


def ensure_webhook_serving(pki_dir: Path, stem: str) -> Path:
    """A serving certificate for a webhook server on loopback (the API server calls it at https://127.0.0.1:port),
    signed by the local CA; written as `<stem>/tls.crt` and `tls.key`, the names controller-runtime looks for.
    Returns that directory. Issued once per CA."""
    out = pki_dir / stem
    if (out / "tls.crt").exists() and (out / "tls.key").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    loaded = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = _issue(_name(stem), key, ca_cert, loaded, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    _write_key(out / "tls.key", key)
    _write_cert(out / "tls.crt", cert)
    return out
