"""Shared fixtures: a real, throwaway PostgreSQL server for the tests that need one, and a
real 1 MiB filesystem (``small_fs``, a tmpfs) for the tests of a full disk.

``postgres_url`` (session) starts a private server once per test session: ``initdb`` into a
temporary directory, ``pg_ctl start`` listening only on 127.0.0.1 on a free port (and on a unix
socket inside that directory), trust authentication for local and loopback connections, and a
database ``e2rnas_test``; it yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/e2rnas_test``
and stops the server (``pg_ctl stop -m fast``) and removes the directory at teardown, whatever
the tests did. As root, the directory belongs to the ``postgres`` user and the server runs as
that user (``runuser -u postgres --``), since PostgreSQL refuses to run as root.

When ``E2RNAS_TEST_POSTGRES_URL`` is set, its URL is used instead and nothing is started; its
role needs the CREATEDB privilege (see ``postgres_db_url``).

The server binaries (``initdb``, ``pg_ctl``, ``postgres``) are looked up on PATH, then in the
newest ``/usr/lib/postgresql/<version>/bin``; without them the tests that need the server fail
(they are not skipped: ``make test`` installs Debian's ``postgresql`` package, so a missing
server is a broken setup, not an optional one).

``postgres_db_url`` (function) gives each test a database of its own, created fresh on that
server and dropped after the test, so tests never see each other's rows.

Under pytest-xdist (``make test`` runs one worker per core) each worker, and every process it
starts, computes on one thread: two workers on two cores with two OpenMP threads each would
oversubscribe the cores and make each test several times slower.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from service.orchestration.addresses import free_port


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


POSTGRES_ENV = "E2RNAS_TEST_POSTGRES_URL"
POSTGRES_DB = "e2rnas_test"
POSTGRES_USER = "postgres"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_BIN_DIRS = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "`make test` installs Debian's `postgresql` package "
    "(apt-get install -y --no-install-recommends postgresql); install it, "
    f"or set {POSTGRES_ENV} to the SQLAlchemy URL of a PostgreSQL server"
)
HBA = """\
# Written by tests/conftest.py: a throwaway test server, trust for local and loopback only.
local all all trust
host all all 127.0.0.1/32 trust
"""
SERVER_TIMEOUT_S = 60
START_ATTEMPTS = 3
# Run in a process of its own: waits for its stdin (a pipe from this test session) to close,
# however the session ended (killed included), then stops the server and removes its files.
WATCHDOG = """\
import shutil, subprocess, sys
sys.stdin.read()
subprocess.run(sys.argv[1:-1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
shutil.rmtree(sys.argv[-1], ignore_errors=True)
"""


def _is_root() -> bool:
    return os.geteuid() == 0


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,), so that the newest version sorts last."""
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def _has_server_binaries(bin_dir: Path) -> bool:
    return all(
        (bin_dir / name).is_file() and os.access(bin_dir / name, os.X_OK)
        for name in SERVER_BINARIES
    )


def find_postgres_bin() -> Path | None:
    """The directory of ``initdb``, ``pg_ctl`` and ``postgres``: the one ``pg_ctl`` on PATH
    resolves to, else the newest ``/usr/lib/postgresql/*/bin``; None when there is none."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None and shutil.which("initdb") is not None:
        bin_dir = Path(on_path).resolve().parent
        if _has_server_binaries(bin_dir):
            return bin_dir
    found = [d for d in DEBIAN_BIN_DIRS.glob("*/bin") if _has_server_binaries(d)]
    return max(found, key=_version_key) if found else None


def _runuser() -> str:
    """``runuser`` (util-linux): on PATH, else in the sbin directories a PATH may lack."""
    found = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "running as root, the test PostgreSQL server must run as the "
            f"{POSTGRES_USER!r} user through runuser (util-linux), and there is no runuser",
            pytrace=False,
        )
    return found


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the ``postgres`` user."""
    return [_runuser(), "-u", POSTGRES_USER, "--", *command] if _is_root() else command


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_server_user(command),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SERVER_TIMEOUT_S + 30,
        check=False,
    )


def _output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {done.returncode}: {(done.stdout + done.stderr).strip()}"


def _server_settings(sockets: Path) -> str:
    return (
        "\n# Written by tests/conftest.py: a throwaway test server.\n"
        "listen_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = '{sockets}'\n"
        "fsync = off\n"
        "synchronous_commit = off\n"
        "full_page_writes = off\n"
    )


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no server log)"


def _create_database(url: str, name: str) -> None:
    """``CREATE DATABASE name`` through a connection to ``url`` (autocommit: it cannot run in
    a transaction); from PostgreSQL 15 with the file-copy strategy, several times faster here
    for a small database than the default."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            version = conn.dialect.server_version_info or (0,)
            strategy = " STRATEGY FILE_COPY" if version >= (15,) else ""
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}'))
    finally:
        admin.dispose()


@contextmanager
def throwaway_postgres(bin_dir: Path) -> Iterator[str]:
    """Start a private PostgreSQL server from ``bin_dir``; yield the URL of its database
    ``e2rnas_test``; stop it and remove its files on exit, even when the body raised."""
    if _is_root():
        try:
            server_user = pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            pytest.fail(
                f"running as root, PostgreSQL must run as the {POSTGRES_USER!r} user, and "
                f"there is none: {INSTALL_HINT} (the package creates that user)",
                pytrace=False,
            )
    # As root, /tmp: a temporary directory under a private parent would be out of the
    # server user's reach.
    root = Path(tempfile.mkdtemp(prefix="e2rnas-pg-", dir="/tmp" if _is_root() else None))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False

    def stop() -> None:
        nonlocal started
        if not started:
            return
        started = False
        done = _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], cwd=root)
        if done.returncode != 0 and (data / "postmaster.pid").exists():
            _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], cwd=root)

    # A backstop should the session end without fixture teardown (SIGTERM, SIGKILL, crash):
    # in a session of its own, so that a Ctrl-C on the terminal does not stop it early.
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WATCHDOG,
            *_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            str(root),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
    )
    try:
        sockets.mkdir()
        if _is_root():
            for path in (root, sockets):
                os.chown(path, server_user.pw_uid, server_user.pw_gid)
        done = _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=root,
        )
        if done.returncode != 0:
            pytest.fail(f"initdb of the test PostgreSQL server failed, {_output(done)}")
        (data / "pg_hba.conf").write_text(HBA)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_server_settings(sockets))
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()  # another process may take it first: then try another
            started = True
            done = _run(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    str(SERVER_TIMEOUT_S),
                    "start",
                ],
                cwd=root,
            )
            if done.returncode == 0:
                break
            stop()
            if attempt == START_ATTEMPTS:
                pytest.fail(
                    f"the test PostgreSQL server did not start, {_output(done)}\n"
                    f"server log:\n{_log_tail(log)}"
                )
        server_url = f"postgresql+psycopg://{POSTGRES_USER}@127.0.0.1:{port}"
        try:
            _create_database(f"{server_url}/postgres", POSTGRES_DB)
        except ModuleNotFoundError as err:
            pytest.fail(
                f"the PostgreSQL driver is missing ({err}); install psycopg: "
                "pip install 'psycopg[binary]'",
                pytrace=False,
            )
        yield f"{server_url}/{POSTGRES_DB}"
    finally:
        try:
            stop()
            shutil.rmtree(root, ignore_errors=True)
        finally:
            if watchdog.stdin is not None:
                watchdog.stdin.close()
            watchdog.wait(timeout=SERVER_TIMEOUT_S)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a PostgreSQL database: ``E2RNAS_TEST_POSTGRES_URL`` when set,
    else that of a throwaway server started for this session (see the module docstring)."""
    given = os.environ.get(POSTGRES_ENV, "").strip()
    if given:
        if make_url(given).get_backend_name() != "postgresql":
            pytest.fail(f"{POSTGRES_ENV}: expected a postgresql URL, got {given!r}", pytrace=False)
        yield given
        return
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.fail(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in "
            f"{DEBIAN_BIN_DIRS}/*/bin: {INSTALL_HINT}",
            pytrace=False,
        )
    with throwaway_postgres(bin_dir) as url:
        yield url


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database of its own for one test, on ``postgres_url``'s
    server; dropped (with any connections still open to it) after the test."""
    name = f"e2rnas_t_{uuid.uuid4().hex[:16]}"
    shown = make_url(postgres_url).render_as_string(hide_password=True)
    try:
        _create_database(postgres_url, name)
    except SQLAlchemyError as err:
        pytest.fail(
            f"cannot create a scratch database on {shown} (its role needs CREATEDB): {err}",
            pytrace=False,
        )
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


# -- a real full disk ----------------------------------------------------------------------------

SMALL_FS_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SmallFilesystem:
    """A 1 MiB tmpfs mounted for one test: ``fill(free)`` leaves about ``free`` bytes."""

    root: Path

    def fill(self, free: int = 0) -> None:
        """Write a filler file until the filesystem has at most ``free`` bytes left."""
        filler = self.root / "filler"
        with filler.open("ab") as handle:
            while os.statvfs(self.root).f_bavail * os.statvfs(self.root).f_frsize > free:
                try:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                except OSError:
                    break

    def temporary_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.name.endswith((".tmp", ".partial"))]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFilesystem]:
    """A real filesystem of 1 MiB (tmpfs), so that a test can run out of space for real;
    skipped where this process cannot mount one (not root, or no CAP_SYS_ADMIN)."""
    root = tmp_path / "small-fs"
    root.mkdir()
    mount = shutil.which("mount") or "/bin/mount"
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={SMALL_FS_BYTES}", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield SmallFilesystem(root)
    finally:
        umount = shutil.which("umount") or "/bin/umount"
        if subprocess.run([umount, str(root)], capture_output=True, check=False).returncode:
            subprocess.run([umount, "-l", str(root)], capture_output=True, check=False)


@dataclass
class PostgresServer:
    """A private PostgreSQL server that a test may stop and start again (same port, same
    data), to show what the service does while its database is gone."""

    url: str
    bin_dir: Path
    data: Path
    port: int

    def _pg_ctl(self, *args: str) -> None:
        done = _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args], cwd=self.data.parent
        )
        assert done.returncode == 0, _output(done)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        log = self.data.parent / "server.log"
        self._pg_ctl(
            "-l", str(log), "-o", f"-p {self.port}", "-w", "-t", str(SERVER_TIMEOUT_S), "start"
        )


@pytest.fixture
def stoppable_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server of the test's own (not the session's shared one), with
    ``stop`` and ``start``; removed after the test whatever state it was left in."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.fail(f"no PostgreSQL server binaries: {INSTALL_HINT}", pytrace=False)
    with throwaway_postgres(bin_dir) as url:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                data = Path(str(conn.execute(text("SHOW data_directory")).scalar_one()))
        finally:
            engine.dispose()
        port = make_url(url).port
        assert port is not None
        yield PostgresServer(url, bin_dir, data, port)


# -- the shared reference sweep and the fault tally ----------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweepkit import SharedRun, shared_run  # noqa: E402


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """The undisturbed reference sweep (``tests/sweepkit.py``), run once for the whole session
    and all its xdist workers: read it, never write into it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers' own temporary directories
    run = shared_run(base)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """Record a fault this test injects: ``record = fault("worker SIGKILL")``; the test sets
    ``record["injected"] = True`` once it has injected it for real, and ``rows_lost`` and
    ``rows_duplicated`` once it has compared the outcome with the undisturbed run. The fault
    counts as survived when it was injected and the test passed (see the session summary)."""

    def record(name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "fault": name,
            "injected": False,
            "rows_lost": None,
            "rows_duplicated": None,
        }
        request.node.user_properties.append(("fault", entry))
        return entry

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault tally: each fault the tests injected, whether the sweep survived it (the test
    passed), and the rows lost or duplicated against the undisturbed run."""
    entries = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            for name, entry in getattr(report, "user_properties", ()):
                if name == "fault":
                    entries.append((entry, report.passed and entry["injected"]))
    if not entries:
        return
    terminalreporter.section("fault tally")
    for entry, survived in sorted(entries, key=lambda e: e[0]["fault"]):
        terminalreporter.line(
            f"{entry['fault']:<44} injected {'yes' if entry['injected'] else 'NO ':<3}  "
            f"survived {'yes' if survived else 'NO ':<3}  rows lost {entry['rows_lost']}  "
            f"duplicated {entry['rows_duplicated']}"
        )
    injected = sum(1 for entry, _ in entries if entry["injected"])
    survived = sum(1 for _, ok in entries if ok)
    lost = sum(entry["rows_lost"] or 0 for entry, _ in entries)
    duplicated = sum(entry["rows_duplicated"] or 0 for entry, _ in entries)
    terminalreporter.line(
        f"faults injected {injected}, survived {survived}, rows lost {lost}, "
        f"rows duplicated {duplicated}"
    )
