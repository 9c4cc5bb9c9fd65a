"""Private PostgreSQL and RabbitMQ servers that a reliability test may stop and restart.

The machine's shared servers (PostgreSQL on 5432, RabbitMQ on 5672) serve every other test
and every colleague's run, so a fault-injection test must never stop them. These helpers
start servers of the test's own, in a temporary folder, on free ports, and stop them again:

- PostgreSQL: `initdb` + `pg_ctl` from /usr/lib/postgresql/<newest>/bin, run as the
  `postgres` OS user when we are root (PostgreSQL refuses to run as root), trust auth,
  listening on 127.0.0.1 only; fsync off because durability across a *machine* crash is not
  what these tests are about (a server restart still flushes).
- RabbitMQ: a second Erlang node (`RABBITMQ_NODENAME=syncd_rel_<pid>_<hex>@localhost`) with its
  own config file, mnesia folder, log folder, plugins file and Erlang cookie, registered with
  the machine's epmd. Its mnesia folder survives `restart()`, so durable queues and persistent
  messages survive as they would on a real broker restart.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg


class PrivateServiceError(RuntimeError):
    """A private server could not be started; the test that needs it cannot run."""


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux's default: 32768)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(*, offset_free: int | None = None) -> int:
    """A free TCP port on 127.0.0.1; with `offset_free`, port+offset must be free as well.

    Both lie below the kernel's ephemeral range: a client reconnecting in a tight loop while
    a private server is down takes a new ephemeral local port per attempt, and one of them
    once was the port the restarted node wanted to listen on (RabbitMQ then exits with
    could_not_start_listener)."""
    high = _ephemeral_low() - (offset_free or 0)
    if high <= LOWEST_PORT:
        raise PrivateServiceError(f"no room for ports below the ephemeral range ({high})")
    for _ in range(200):
        port = LOWEST_PORT + secrets.randbelow(high - LOWEST_PORT)
        if not port_is_free(port):
            continue
        if offset_free is not None and not port_is_free(port + offset_free):
            continue
        return port
    raise PrivateServiceError("no free TCP port found on 127.0.0.1")


def wait_port(port: int, *, timeout: float, up: bool = True) -> None:
    """Wait until something listens on 127.0.0.1:port (or, with up=False, nothing does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.1)
    state = "listening" if up else "closed"
    raise PrivateServiceError(f"127.0.0.1:{port} not {state} after {timeout:.0f}s")


def _pg_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PrivateServiceError("PostgreSQL server binaries (initdb, pg_ctl) not found")


class PrivatePostgres:
    """A PostgreSQL cluster of our own: start(), stop(), restart(), url(dbname)."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.bindir = _pg_bindir()
        # PostgreSQL will not run as root; as root we hand the folder to the postgres user.
        self._run_as = "postgres" if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise PrivateServiceError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
            )

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode "fast" ends sessions, "immediate" is a crash without cleanup."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
        )

    def restart(self, down_seconds: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_seconds)
        self.start()

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def create_database(self, name: str) -> str:
        """Create a database; return its SQLAlchemy URL."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    base = Path(tempfile.mkdtemp(prefix="syncd_rel_pg_"))
    server = PrivatePostgres(base)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _rabbit_bindir() -> Path:
    # The /usr/sbin wrappers re-exec through `su rabbitmq`, which would not find our
    # root-owned temp folder; the real scripts run fine as any user with its own HOME.
    for candidate in ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"):
        if (Path(candidate) / "rabbitmq-server").exists():
            return Path(candidate)
    found = shutil.which("rabbitmq-server")
    if found:
        return Path(found).parent
    raise PrivateServiceError("rabbitmq-server not found")


class PrivateRabbitMQ:
    """A RabbitMQ node of our own: start(), stop(), restart(), url(vhost="/")."""

    DIST_OFFSET = 10_000  # the node's distribution port; both stay below the ephemeral range

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port(offset_free=self.DIST_OFFSET)
        self.node = f"syncd_rel_{os.getpid()}_{secrets.token_hex(2)}@localhost"
        self.bindir = _rabbit_bindir()
        self.pid_file = base / "rabbit.pid"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.base),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.port + self.DIST_OFFSET),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            # Not the machine's rabbitmq-env.conf: it names the shared node.
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            ERL_EPMD_ADDRESS="127.0.0.1",
            # One scheduler thread: the machine has 2 cores shared by everyone.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                "-kernel inet_dist_use_interface {127,0,0,1} +S 1:1 +A 4"
            ),
        )
        return env

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
            # The default 30-minute consumer timeout is what production sees; keep it.
        )

    def _ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        with suppress(FileNotFoundError):
            self.pid_file.unlink()
        subprocess.run(
            [str(self.bindir / "rabbitmq-server"), "-detached"],
            env=self._env(),
            capture_output=True,
            timeout=60,
            check=True,
        )
        deadline = time.monotonic() + 60
        while not self.pid_file.exists():
            if time.monotonic() > deadline:
                raise PrivateServiceError(f"RabbitMQ node {self.node} wrote no pid file")
            time.sleep(0.2)
        proc = self._ctl("wait", str(self.pid_file), "--timeout", "90", timeout=120)
        if proc.returncode != 0:
            raise PrivateServiceError(
                f"RabbitMQ node {self.node} did not start: {proc.stdout[-500:]}{proc.stderr[-500:]}"
            )
        wait_port(self.port, timeout=30)

    def stop(self) -> None:
        proc = self._ctl("stop", timeout=60)
        if proc.returncode != 0:
            self.kill()
        with suppress(PrivateServiceError):
            wait_port(self.port, timeout=30, up=False)

    def kill(self) -> None:
        """SIGKILL the node (a crash); used as a fallback and at the end."""
        with suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def url(self, vhost: str = "/") -> str:
        quoted = "%2F" if vhost == "/" else vhost
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quoted}"


@contextmanager
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    base = Path(tempfile.mkdtemp(prefix="syncd_rel_mq_"))
    node = PrivateRabbitMQ(base)
    try:
        node.init()
        node.start()
        yield node
    finally:
        with suppress(Exception):
            node.stop()
        node.kill()
        shutil.rmtree(base, ignore_errors=True)
