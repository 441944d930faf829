"""Certificates, keys and static tokens for the local control plane (made with openssl)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Identities in the static token file. KCM and the scheduler get their real bootstrap RBAC
# users; kwok and our provisioner act like privileged node/storage agents.
FRONT_PROXY_CN = "front-proxy-client"

IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
    "provisioner": ("local-provisioner", ("system:masters",)),
}
# Each real node's kubelet has a node identity of its own (bound to the system:node role).
MAX_REAL_NODES = 8


def real_node_name(index: int) -> str:
    return f"real-node-{index}"


IDENTITIES.update(
    {
        real_node_name(i): (f"system:node:{real_node_name(i)}", ("system:nodes",))
        for i in range(MAX_REAL_NODES)
    }
)


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def proxy_cert(self) -> Path:
        return self.folder / "front-proxy-client.crt"

    @property
    def proxy_key(self) -> Path:
        return self.folder / "front-proxy-client.key"

    @property
    def sa_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "sa.pub"

    @property
    def token_file(self) -> Path:
        return self.folder / "tokens.csv"

    def tokens(self) -> dict[str, str]:
        """Token per identity key of IDENTITIES, read back from the token file."""
        out: dict[str, str] = {}
        users = {user: key for key, (user, _) in IDENTITIES.items()}
        for line in self.token_file.read_text().splitlines():
            token, user = line.split(",")[:2]
            if user in users:
                out[users[user]] = token
        return out


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
_SIGNING = ("-days", "3650", "-copy_extensions", "copy")


def _signed_cert(pki: Pki, cert: Path, key: Path, subject: str, *extensions: str) -> None:
    csr = cert.with_suffix(".csr")
    ext_args = [arg for ext in extensions for arg in ("-addext", ext)]
    _openssl("req", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", subject, *ext_args)
    ca = ("-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key), "-CAcreateserial")
    _openssl("x509", "-req", "-in", str(csr), *ca, "-out", str(cert), *_SIGNING)
    csr.unlink()


def ensure_pki(folder: Path) -> Pki:
    """Creates what is missing; kept across restarts so tokens and SA signatures stay valid."""
    pki = Pki(folder)
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed to generate the local cluster's certificates")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not pki.ca_cert.exists():
        ca_ext = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")
        ext_args = [arg for ext in ca_ext for arg in ("-addext", ext)]
        out = ("-keyout", str(pki.ca_key), "-out", str(pki.ca_cert))
        _openssl("req", "-x509", *_EC, *out, "-days", "3650", "-subj", "/CN=local-ca", *ext_args)
    if not pki.serving_cert.exists():
        sans = ",".join(
            [
                "IP:127.0.0.1",
                "IP:10.96.0.1",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        )
        _signed_cert(
            pki,
            pki.serving_cert,
            pki.serving_key,
            "/CN=kube-apiserver",
            f"subjectAltName={sans}",
            "extendedKeyUsage=serverAuth",
            "keyUsage=critical,digitalSignature,keyEncipherment",
        )
    if not pki.proxy_cert.exists():
        # Client identity of the aggregation layer (front proxy) towards extension apiservers.
        _signed_cert(
            pki,
            pki.proxy_cert,
            pki.proxy_key,
            f"/CN={FRONT_PROXY_CN}",
            "extendedKeyUsage=clientAuth",
            "keyUsage=critical,digitalSignature",
        )
    if not pki.sa_pub.exists():
        _openssl("genrsa", "-out", str(pki.sa_key), "2048")
        _openssl("rsa", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    if not pki.token_file.exists():
        lines = []
        for user, groups in IDENTITIES.values():
            token = secrets.token_hex(24)
            lines.append(f"{token},{user},{user}" + (f',"{",".join(groups)}"' if groups else ""))
        pki.token_file.write_text("\n".join(lines) + "\n")
        pki.token_file.chmod(0o600)
    return pki
