"""A real OpenLDAP server (Debian's slapd) for the tests: a throwaway directory on a free
loopback port, StartTLS with a certificate from a CA generated here, people and groups."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import tempfile
from pathlib import Path

from tests.services import Process, free_port, port_open, wait_until

BASE = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "directory-admin-secret"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
# Disabled people stay in the directory with employeeType=disabled; the portal's user filter
# leaves them out (README's worked example does the same).
USER_FILTER = "(&(objectClass=inetOrgPerson)(uid=%(user)s)(!(employeeType=disabled)))"


def write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dockyard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class Slapd:
    def __init__(self) -> None:
        self.port = free_port()
        self.tls_port = free_port()  # LDAPS: TLS from the first byte
        self.base = Path(tempfile.mkdtemp(prefix="dockyard-slapd-"))
        self.process: Process | None = None
        self.ca, cert, key = write_tls(self.base)
        (self.base / "data").mkdir()
        (self.base / "slapd.conf").write_text(
            f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {self.base}/slapd.pid
TLSCACertificateFile {self.ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
# Simple binds only after StartTLS: a password never crosses in the clear.
security simple_bind=128
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {self.base}/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        )

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> Slapd:
        if not shutil.which("slapd") and not Path("/usr/sbin/slapd").exists():
            raise RuntimeError("slapd not found; run `make test`, which installs it")
        self.process = Process(
            f"slapd-{self.port}",
            [
                "/usr/sbin/slapd",
                "-f",
                str(self.base / "slapd.conf"),
                "-h",
                f"{self.uri}/ ldaps://127.0.0.1:{self.tls_port}/",
                "-d",
                "0",
            ],
            log_dir=self.base,
        )
        wait_until(lambda: port_open(self.port) and port_open(self.tls_port), what="slapd to listen")
        conn = self.admin()
        conn.add_s(BASE, _attrs(objectClass=["dcObject", "organization"], dc="example", o="Example"))
        for ou in ("people", "groups"):
            conn.add_s(f"ou={ou},{BASE}", _attrs(objectClass=["organizationalUnit"], ou=ou))
        conn.unbind_s()
        return self

    def admin(self):
        """A connection bound as the directory's administrator, over StartTLS."""
        import ldap

        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.ca))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.start_tls_s()
        conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        return conn

    def add_person(self, uid: str, password: str, *, mail: str = "", name: str = "") -> str:
        dn = f"uid={uid},{PEOPLE}"
        conn = self.admin()
        conn.add_s(
            dn,
            _attrs(
                objectClass=["inetOrgPerson"],
                uid=uid,
                cn=name or uid.title(),
                sn=uid,
                mail=mail or f"{uid}@example.org",
                userPassword=password,
            ),
        )
        conn.unbind_s()
        return dn

    def add_group(self, cn: str, members: list[str]) -> str:
        dn = f"cn={cn},{GROUPS}"
        conn = self.admin()
        conn.add_s(dn, _attrs(objectClass=["groupOfNames"], cn=cn, member=members))
        conn.unbind_s()
        return dn

    def modify(self, dn: str, **replace) -> None:
        import ldap

        conn = self.admin()
        conn.modify_s(dn, [(ldap.MOD_REPLACE, k, [str(x).encode() for x in _list(v)]) for k, v in replace.items()])
        conn.unbind_s()

    def delete(self, dn: str) -> None:
        conn = self.admin()
        conn.delete_s(dn)
        conn.unbind_s()

    def env(self) -> dict[str, str]:
        """The portal's LDAP_* settings for this directory (README's worked example)."""
        return {
            "LDAP_SERVER_URI": self.uri,
            "LDAP_START_TLS": "true",
            "LDAP_CA_FILE": str(self.ca),
            "LDAP_BIND_DN": ADMIN_DN,
            "LDAP_BIND_PASSWORD": ADMIN_PASSWORD,
            "LDAP_USER_SEARCH_BASE": PEOPLE,
            "LDAP_USER_FILTER": USER_FILTER,
            "LDAP_GROUP_SEARCH_BASE": GROUPS,
        }

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


def _attrs(**values) -> list[tuple[str, list[bytes]]]:
    return [(k, [str(x).encode() for x in _list(v)]) for k, v in values.items()]
