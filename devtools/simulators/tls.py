"""TLS for the simulators that only speak HTTPS: Microsoft Graph, Gmail and Drive.

The clients refuse plain HTTP where it matters, and rightly: ``azure-identity`` rejects an
``http://`` authority (``normalize_authority``: "must be a TLS protected (https) URL"), and
``googleapiclient`` keeps the ``https`` scheme of a media-upload URL when ``api_endpoint`` moves
its host. So these simulators are also served over TLS, with a certificate made for the run
(``127.0.0.1`` and ``localhost``), and every connection that points at them names a CA bundle
(the public roots plus this certificate) in its extras: ``verify`` for the Graph hook (it is
handed to httpx and to azure-identity's ``connection_verify``), ``ca_certs`` for the Google hooks
(httplib2's ``ca_certs``). Nothing disables certificate checks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

# base_url of a running SimServer -> its TLS endpoint, so demo_connections(base_url, ...) can
# point the HTTPS-only systems at the TLS listener of the same server
_ENDPOINTS: dict[str, TlsEndpoint] = {}


@dataclass(frozen=True)
class TlsEndpoint:
    base_url: str
    ca_bundle: str


def register(http_base_url: str, endpoint: TlsEndpoint) -> None:
    _ENDPOINTS[http_base_url] = endpoint


def unregister(http_base_url: str) -> None:
    _ENDPOINTS.pop(http_base_url, None)


def endpoint_for(http_base_url: str) -> TlsEndpoint | None:
    return _ENDPOINTS.get(http_base_url)


@dataclass(frozen=True)
class SimCertificate:
    """A self-signed certificate for the loopback listener, and a CA bundle that trusts it."""

    certfile: str
    keyfile: str
    ca_bundle: str

    @classmethod
    def create(cls, folder: Path | None = None) -> SimCertificate:
        import certifi
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        folder = Path(folder or tempfile.mkdtemp(prefix="msp-sim-tls-"))
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MSP report simulators (test only)")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        certfile, keyfile, bundle = folder / "sim-cert.pem", folder / "sim-key.pem", folder / "ca-bundle.pem"
        certfile.write_bytes(pem)
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        keyfile.chmod(0o600)
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + pem)
        return cls(str(certfile), str(keyfile), str(bundle))

    def remove(self) -> None:
        import shutil

        shutil.rmtree(Path(self.certfile).parent, ignore_errors=True)
