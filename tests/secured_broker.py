"""A development broker behind authentication and TLS, for the tests of the SASL and TLS
settings (docs/tansu.md, "Authentication and TLS").

Tansu 0.6.0 cannot check a password: with ``--authentication`` it offers SCRAM only, and its
in-memory store keeps no SCRAM credential (creating a user succeeds and stores nothing), so every
client is refused; and it cannot serve TLS (its ``--cert`` and ``--key`` options exclude each
other). :func:`tansu` runs it either way: with ``authentication=True`` for the refusals, or
plain behind a :class:`Relay`, which does what the broker cannot: TLS (optionally requiring a
client certificate) and the SASL exchange (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against its
own users, with the checks of RFC 5802), then relays the connection's bytes to the broker, which
advertises the relay's address. The clients under test speak to it exactly as to a broker.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import os
import secrets
import selectors
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from agent_failover.broker.embedded import free_port, tansu_binary
from agent_failover.dev.processes import Proc, die_with_parent
from agent_failover.dev.waiting import eventually

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM = 58, 33
MECHANISMS = {"PLAIN": None, "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


# --- the few requests spoken by hand -----------------------------------------------------------


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _frame(sock: socket.socket) -> bytes:
    """One size-prefixed frame (without its size)."""
    return _read(sock, struct.unpack(">i", _read(sock, 4))[0])


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">i", len(payload)) + payload)


def _api_versions_answered(port: int) -> bool:
    """Whether a broker answers ApiVersions (allowed before authentication) on ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            _send(sock, struct.pack(">hhi", API_VERSIONS, 0, 1) + _string("tests"))
            return struct.unpack(">h", _frame(sock)[4:6])[0] == 0
    except OSError:
        return False


@dataclasses.dataclass
class _Request:
    api_key: int
    version: int
    correlation: int
    body: bytes  # after the client id (SASL requests: non-flexible versions, no tagged fields)
    frame: bytes

    @classmethod
    def parse(cls, frame: bytes) -> _Request:
        api_key, version, correlation, client_len = struct.unpack(">hhih", frame[:10])
        return cls(api_key, version, correlation, frame[10 + max(client_len, 0) :], frame)


class _Sasl:
    """The server side of one SASL exchange against ``users`` (name -> password)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.mechanism = ""
        self._scram: tuple[str, bytes, str, str] | None = None  # user, salted, first, server

    def step(self, token: bytes) -> tuple[bytes, bool | None]:
        """The answer to a client token, and whether the client is in (None: not yet)."""
        if self.mechanism == "PLAIN":
            _authz, user, password = token.decode().split("\0")
            return b"", self._users.get(user) == password
        if self._scram is None:
            return self._server_first(token.decode()), None
        return self._server_final(token.decode())

    def _server_first(self, client_first: str) -> bytes:
        bare = client_first.split(",", 2)[2]
        fields = dict(f.split("=", 1) for f in bare.split(","))
        salt, nonce = secrets.token_bytes(16), fields["r"] + secrets.token_hex(12)
        algorithm = MECHANISMS[self.mechanism] or "sha256"
        password = self._users.get(fields["n"], secrets.token_hex(8)).encode()
        salted = hashlib.pbkdf2_hmac(algorithm, password, salt, 4096)
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
        self._scram = (fields["n"], salted, bare, server_first)
        return server_first.encode()

    def _server_final(self, client_final: str) -> tuple[bytes, bool]:
        assert self._scram is not None
        user, salted, first, server_first = self._scram
        algorithm = MECHANISMS[self.mechanism] or "sha256"
        without_proof, _, proof = client_final.rpartition(",p=")
        message = f"{first},{server_first},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", algorithm)
        stored = hashlib.new(algorithm, client_key).digest()
        signature = hmac.digest(stored, message, algorithm)
        given = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=False))
        if user not in self._users or hashlib.new(algorithm, given).digest() != stored:
            return b"e=invalid-proof", False
        server_key = hmac.digest(salted, b"Server Key", algorithm)
        proof_of_server = hmac.digest(server_key, message, algorithm)
        return b"v=" + base64.b64encode(proof_of_server), True


def _login(client: socket.socket, backend: socket.socket, users: Mapping[str, str]) -> bool:
    """Serve the requests before authentication: ApiVersions goes to the broker, the SASL
    exchange is answered here. True once the client proved its password."""
    sasl = _Sasl(users)
    while True:
        request = _Request.parse(_frame(client))
        head = struct.pack(">i", request.correlation)
        if request.api_key == API_VERSIONS:
            _send(backend, request.frame)
            _send(client, _frame(backend))
        elif request.api_key == SASL_HANDSHAKE:
            mechanism = request.body[2 : 2 + struct.unpack(">h", request.body[:2])[0]].decode()
            known = mechanism in MECHANISMS
            sasl.mechanism = mechanism
            error = 0 if known else UNSUPPORTED_SASL_MECHANISM
            names = b"".join(_string(m) for m in MECHANISMS)
            _send(client, head + struct.pack(">hi", error, len(MECHANISMS)) + names)
            if not known:
                return False
        elif request.api_key == SASL_AUTHENTICATE and request.version <= 1:
            token = request.body[4 : 4 + struct.unpack(">i", request.body[:4])[0]]
            answer, accepted = sasl.step(token)
            error = SASL_AUTHENTICATION_FAILED if accepted is False else 0
            text = "Authentication failed: invalid credentials" if error else None
            body = struct.pack(">h", error) + _string(text) + struct.pack(">i", len(answer))
            body += answer + (struct.pack(">q", 0) if request.version == 1 else b"")
            _send(client, head + body)
            if accepted is not None:
                return accepted
        else:
            return False  # anything else before authentication: hang up


# --- certificates and the TLS relay ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Certificates:
    """A test CA, a server certificate for 127.0.0.1, and a client certificate whose private
    key is encrypted with ``key_password`` (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    key_password: str


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    """Generate the certificates with the ``openssl`` command, valid for a day."""
    d = directory
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=af-ca",
             "-keyout", d / "ca.key", "-out", d / "ca.pem")  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=af-{name}",
                 "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")  # fmt: skip
        _openssl("x509", "-req", "-days", "1", "-in", d / f"{name}.csr", "-CA", d / "ca.pem",
                 "-CAkey", d / "ca.key", "-CAcreateserial", "-extfile", d / f"{name}.ext",
                 "-out", d / f"{name}.pem")  # fmt: skip
    password = "client-key-passphrase"
    _openssl("pkey", "-in", d / "client.key", "-aes256", "-passout", f"pass:{password}",
             "-out", d / "client.enc.key")  # fmt: skip
    return Certificates(
        d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.enc.key",
        password,
    )  # fmt: skip


class Relay:
    """Listens on a port of 127.0.0.1 and relays each connection to the broker on ``backend``.

    With ``certs``, connections are TLS (the server certificate of the test CA), and with
    ``require_client_cert`` only clients presenting a certificate of that CA get through
    (mutual TLS). With ``users`` (name -> password), a client must first pass the SASL exchange
    the relay serves; ``refused`` counts the connections turned away. :meth:`cut` takes the
    broker away from every client (connections closed, new ones closed at once) until
    :meth:`restore`.
    """

    def __init__(
        self,
        backend: int,
        *,
        certs: Certificates | None = None,
        require_client_cert: bool = False,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self._users = users
        self._context: ssl.SSLContext | None = None
        if certs is not None:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(certs.server_cert, certs.server_key)
            if require_client_cert:
                self._context.verify_mode = ssl.CERT_REQUIRED
                self._context.load_verify_locations(certs.ca)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.refused = 0
        self._stop = threading.Event()
        self._cut = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cut(self) -> None:
        """The broker is gone for every client: open connections close, new ones are closed."""
        self._cut.set()

    def restore(self) -> None:
        """The broker is back."""
        self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._cut.is_set():
                raw.close()
                continue
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            client = self._context.wrap_socket(raw, server_side=True) if self._context else raw
        except (ssl.SSLError, OSError):
            self.refused += 1
            raw.close()
            return
        with client, socket.create_connection(("127.0.0.1", self.backend)) as backend:
            try:
                if self._users is not None and not _login(client, backend, self._users):
                    self.refused += 1
                    return
            except (OSError, ConnectionError, ValueError, KeyError):
                self.refused += 1
                return
            client.setblocking(False)
            backend.setblocking(False)
            pairs = {client: backend, backend: client}
            with selectors.DefaultSelector() as sel:
                for sock in pairs:
                    sel.register(sock, selectors.EVENT_READ)
                while not self._stop.is_set() and not self._cut.is_set():
                    for key, _ in sel.select(0.2):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        if not _pump(source, pairs[source]):
                            return


def _pump(source: socket.socket, target: socket.socket) -> bool:
    """Move what ``source`` has to ``target``; False once ``source`` is closed."""
    while True:
        try:
            data = source.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        if not data:
            return False
        target.setblocking(True)
        try:
            target.sendall(data)
        except OSError:
            return False
        finally:
            target.setblocking(False)


# --- the broker ---------------------------------------------------------------------------------


@contextlib.contextmanager
def tansu(
    log_dir: Path, *, authentication: bool = False, advertised: int | None = None
) -> Iterator[int]:
    """Run Tansu on a free port (yielded) until the block ends; with ``authentication`` it
    requires SASL, and clients are told (metadata) to connect to port ``advertised`` (a relay)
    when it is given."""
    port = free_port()
    log = log_dir / f"tansu-{port}.log"
    args = [str(tansu_binary()), "broker", "--cluster-id", f"tansu-secured-{port}",
            "--listener-url", f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{advertised or port}",
            "--storage-engine", "memory://tansu/"]  # fmt: skip
    if authentication:
        args.append("--authentication")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
            preexec_fn=die_with_parent(),
        )
    try:
        eventually(lambda: proc.poll() is None and _api_versions_answered(port), 30, "Tansu up")
        yield port
    finally:
        Proc("tansu", proc, log).stop()


@contextlib.contextmanager
def relayed_tansu(
    log_dir: Path,
    *,
    certs: Certificates | None = None,
    require_client_cert: bool = False,
    users: Mapping[str, str] | None = None,
) -> Iterator[Relay]:
    """Tansu behind a :class:`Relay` (its options); clients bootstrap at ``relay.bootstrap``."""
    # Each must know the other's port: the relay binds first, and learns the broker's after.
    front = Relay(0, certs=certs, require_client_cert=require_client_cert, users=users)
    try:
        with tansu(log_dir, advertised=front.port) as port:
            front.backend = port
            front.start()
            yield front
    finally:
        front.stop()
