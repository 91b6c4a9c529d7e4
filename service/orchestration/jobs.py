"""Ray Jobs: the one module of the project that talks to Ray's job server.

The Ray cluster the web service (and ``e2rnas sweep submit``) submits sweeps to, as Ray Jobs.

Either an embedded local Ray that the service starts on first use (with its job server on a
free loopback port) and stops when it stops, or a running cluster's job server
(``http://HEAD:8265``). The embedded head is recorded in the service's state dir
(``ray-head.json``); a service killed with SIGKILL leaves its head running (it is in a session
of its own), and the next service to start there stops it, with its jobs, before it starts its
own. Each sweep is one job whose entrypoint is ``e2rnas sweep run`` (or
``sweep resume`` after the service restarted and the job was gone), so a sweep started from the
web runs exactly the code the CLI runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from service.errors import JobError
from service.files import write_json_atomically
from service.orchestration.addresses import JOBS_PORT, check_address, free_ports
from service.orchestration.processes import is_embedded_head, stop_group

__all__ = ["TERMINAL_JOB_STATES", "JobError", "RayJobs", "job_status", "submit_sweep"]

AGENT_WAIT_S = 300.0
"""How long a submission waits for a fresh head's job agent to take jobs."""

TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")
HEAD_RECORD = "ray-head.json"  # in the service's state dir: the embedded head it runs
TEMP_PREFIX = "e2rnas-ray-"

logger = logging.getLogger(__name__)


def _state_name(status: Any) -> str:
    """``RUNNING`` for Ray's JobStatus enum member (or a plain string)."""
    return str(getattr(status, "value", status))


class RayJobs:
    """Submit, watch and stop sweep jobs on one Ray cluster."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        state_dir: Path | None = None,
        job_env: dict[str, str] | None = None,
    ) -> None:
        self.given_address = address
        self.num_cpus = num_cpus
        self.job_env = dict(job_env or {})  # more variables for every job's driver
        # Where the embedded head is recorded (HEAD_RECORD), so that a service killed without
        # its shutdown has that head stopped by the next one to start here.
        self.state_dir = state_dir
        self._client: Any = None
        self._address: str | None = None  # the job server's, once known
        self._head: subprocess.Popen[bytes] | None = None
        self._temp_dir: Path | None = None
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self.given_address is None

    @property
    def address(self) -> str | None:
        """The job server's address once connected (an embedded Ray's is known only then)."""
        return self._address

    def client(self) -> Any:
        """The job client, starting the embedded Ray first when the service owns one."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        from ray.job_submission import JobSubmissionClient  # type: ignore[import-untyped, unused-ignore]

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        if self.given_address is not None:
            address = (
                self.given_address
                if "://" in self.given_address
                else (f"http://{self.given_address}")
            )
        else:
            address = self._start_head()
        self._address = address
        # A Ray this service just started needs a few seconds for its job server; a cluster's
        # address either answers now or is wrong, and a request should not hang on it.
        deadline = time.monotonic() + (90.0 if self._head is not None else 0.0)
        while True:
            try:
                return JobSubmissionClient(address)
            except (ConnectionError, RuntimeError) as error:
                if self._head is not None and self._head.poll() is not None:
                    raise JobError(f"the embedded Ray stopped: {self._head_log()}") from None
                if time.monotonic() > deadline:
                    raise JobError(
                        f"ray_address: no Ray job server answers at {address} ({error}); "
                        "start the cluster with 'ray start --head' or fix E2RNAS_RAY_ADDRESS"
                    ) from None
                time.sleep(0.5)

    def _start_head(self) -> str:
        """Start a private single-node Ray (``ray start --head --block``) and return its job
        server's address.

        Private means its own temp dir and free ports for everything that has a fixed default
        (GCS 6379, dashboard 8265, the agent's 52365, the client server's 10001): with the
        shared defaults, a job's driver resolves the cluster by ``address="auto"`` and can
        join any other Ray on the machine, and a second Ray's agent cannot bind its port.
        """
        self._stop_recorded_head()
        self._temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp"))
        port, dashboard, agent, client_server = free_ports(4)
        ray_script = Path(sys.executable).with_name("ray")
        command = [
            str(ray_script) if ray_script.exists() else shutil.which("ray") or "ray",
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--temp-dir",
            str(self._temp_dir),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(self.num_cpus or os.cpu_count() or 1),
            "--port",
            str(port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--dashboard-agent-listen-port",
            str(agent),
            "--ray-client-server-port",
            str(client_server),
        ]
        log = (self._temp_dir / "head.log").open("wb")
        env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        # Its own session, so that stopping it (SIGTERM to the group) reaches every process
        # it started and nothing else.
        self._head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        logger.info(
            "started an embedded Ray head (pid %d, temp dir %s)", self._head.pid, self._temp_dir
        )
        address = f"http://127.0.0.1:{dashboard}"
        if self.state_dir is not None:
            record = {"pid": self._head.pid, "temp_dir": str(self._temp_dir), "address": address}
            write_json_atomically(self.state_dir / HEAD_RECORD, record)
        return address

    def _stop_recorded_head(self) -> None:
        """Stop the embedded head (and its jobs) that a previous run of the service recorded
        in ``state_dir`` and left running: killed with SIGKILL, it had no shutdown, and the
        head lives in a session of its own. Only a live ``ray start --head`` whose command
        line names the recorded temp dir is stopped, so a reused pid is left alone."""
        if self.state_dir is None:
            return
        record = self.state_dir / HEAD_RECORD
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            pid, temp_dir, address = int(data["pid"]), str(data["temp_dir"]), str(data["address"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)  # not a record this module wrote whole
            return
        if is_embedded_head(pid, temp_dir):
            logger.warning(
                "stopping the embedded Ray head a previous run of the service left (pid %d, %s)",
                pid,
                address,
            )
            from ray.job_submission import JobSubmissionClient  # type: ignore[import-untyped, unused-ignore]

            with contextlib.suppress(ConnectionError, RuntimeError, ValueError):
                self._stop_all(JobSubmissionClient(address))
            stop_group(pid)
        if Path(temp_dir).name.startswith(TEMP_PREFIX):
            shutil.rmtree(temp_dir, ignore_errors=True)
        record.unlink(missing_ok=True)

    @staticmethod
    def _stop_all(client: Any, timeout: float = 30.0) -> None:
        try:
            running = [
                job.submission_id
                for job in client.list_jobs()
                if _state_name(job.status) not in TERMINAL_JOB_STATES
            ]
            for job_id in running:
                client.stop_job(job_id)
            deadline = time.monotonic() + timeout
            while running and time.monotonic() < deadline:
                time.sleep(0.5)
                running = [
                    job_id
                    for job_id in running
                    if _state_name(client.get_job_status(job_id)) not in TERMINAL_JOB_STATES
                ]
        except (RuntimeError, ConnectionError):
            pass  # the head is going away anyway; its own processes still get SIGTERM

    def _head_log(self) -> str:
        if self._temp_dir is None:
            return ""
        try:
            text = (self._temp_dir / "head.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " ".join(text.split()[-60:])

    def reachable(self, timeout: float = 2.0) -> tuple[bool | None, str]:
        """Whether the job server answers now (None: the embedded Ray has not started yet),
        and a line saying where and why not; at most ``timeout`` seconds, so a health check
        never hangs on a cluster that went away."""
        address = self._address or (
            None
            if self.given_address is None
            else self.given_address
            if "://" in self.given_address
            else f"http://{self.given_address}"
        )
        if address is None:
            return None, "embedded local Ray, starts with the first sweep"
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=timeout) as answer:
                answer.read(4096)
        except (OSError, ValueError) as error:
            return False, f"ray_address: no job server answers at {address} ({error})"
        return True, address

    def submit(
        self,
        run_dir: Path,
        sweep_file: Path | None,
        submission_id: str | None = None,
        upload: bool = False,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start ``sweep run sweep_file --out run_dir``, or ``sweep resume run_dir`` when
        ``sweep_file`` is None; returns the job id (``submission_id`` when given).

        ``upload`` sends the sweep file, alone, as the job's working directory, for a cluster
        that does not share this machine's files: it is copied into a temporary directory,
        so nothing else of its folder leaves the machine (a sweep file references no other
        file; its paths are on the cluster). The job runs this interpreter's path, which a
        cluster built from the project's image has too (docker/). ``env`` is added to the
        job's environment: the way a secret (the database URL) reaches the job without
        entering its command line, its files or its spec.
        """
        run_dir = run_dir.resolve()
        command = [sys.executable, "-m", "service.cli", "sweep"]
        env = {
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            **self.job_env,
            **(env or {}),
        }
        if "RAY_AUTH_MODE" in os.environ:  # the job's driver joins the cluster as we do
            env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"]
        runtime_env: dict[str, Any] = {"env_vars": env}
        if sweep_file is None:
            return self._submit_job([*command, "resume", str(run_dir)], runtime_env, submission_id)
        if not upload:
            command += ["run", str(sweep_file.resolve()), "--out", str(run_dir)]
            return self._submit_job(command, runtime_env, submission_id)
        # The client packs and uploads the working directory within submit_job.
        with tempfile.TemporaryDirectory(prefix="e2rnas-submit-") as work:
            shutil.copyfile(sweep_file, Path(work) / sweep_file.name)
            runtime_env["working_dir"] = work
            command += ["run", sweep_file.name, "--out", str(run_dir)]
            return self._submit_job(command, runtime_env, submission_id)

    def _submit_job(
        self, command: list[str], runtime_env: dict[str, Any], submission_id: str | None
    ) -> str:
        # A fresh head answers HTTP before its node agent takes jobs; that refusal passes. On a
        # loaded two-core machine the agent took over two minutes once (a clean-clone run).
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                job_id: str = self.client().submit_job(
                    entrypoint=" ".join(shlex.quote(part) for part in command),
                    submission_id=submission_id,
                    runtime_env=runtime_env,
                )
                return job_id
            except (RuntimeError, ValueError, OSError) as error:
                if "No available agent" not in str(error) or time.monotonic() > deadline:
                    raise JobError(f"Ray did not accept the sweep job: {error}") from None
                time.sleep(2.0)

    def status(self, job_id: str) -> str | None:
        """The job's status (``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``STOPPED``),
        or None when this cluster does not know the job (e.g. a new embedded Ray)."""
        try:
            status = self.client().get_job_status(job_id)
        except RuntimeError as error:
            if "does not exist" in str(error) or "404" in str(error):
                return None
            raise JobError(f"job {job_id!r}: {error}") from None
        except OSError as error:  # requests' errors are OSErrors: the job server went away
            raise self._unreachable(job_id, error) from None
        return _state_name(status)

    def _unreachable(self, job_id: str, error: OSError) -> JobError:
        reason = " ".join(str(error).split())
        return JobError(
            f"ray_address: job {job_id!r}: Ray's job server at {self._address} does not "
            f"answer ({reason}); the service retries, check the cluster"
        )

    def logs_tail(self, job_id: str, lines: int | None = 20) -> str:
        """The last ``lines`` lines of the job's log (None: all of it); "" when unknown."""
        try:
            logs: str = self.client().get_job_logs(job_id)
        except (RuntimeError, OSError):
            return ""
        return logs if lines is None else "\n".join(logs.splitlines()[-lines:])

    def stop(self, job_id: str) -> None:
        try:
            self.client().stop_job(job_id)
        except RuntimeError as error:
            raise JobError(f"job {job_id!r}: cannot stop it: {error}") from None
        except OSError as error:
            raise self._unreachable(job_id, error) from None

    def shutdown(self) -> None:
        """Stop the embedded Ray (its jobs with it); a cluster's address is left alone."""
        with self._lock:
            client, self._client = self._client, None
            head, self._head = self._head, None
            if head is not None and client is not None:
                # Job drivers run in sessions of their own, out of reach of the head's
                # process group: stop them through Ray (SIGTERM, then SIGKILL) first.
                self._stop_all(client)
            if head is not None:
                stop_group(head.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    head.wait(timeout=10)  # reaped: stop_group left it dead
                logger.info("stopped the embedded Ray head (pid %d)", head.pid)
                if self.state_dir is not None:
                    (self.state_dir / HEAD_RECORD).unlink(missing_ok=True)
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None
            self._address = None


def submit_sweep(sweep_file: Path, address: str, run_dir: Path) -> str:
    """``e2rnas sweep submit``: run ``sweep_file`` as a Ray Job on the cluster whose job server
    is ``address`` (``http://HOST:8265``), the file alone uploaded as the job's working
    directory and ``run_dir`` (absolute) where the results go; returns the job id."""
    check_address(address, JOBS_PORT)
    return RayJobs(address).submit(Path(run_dir), Path(sweep_file), upload=True)


def job_status(job_id: str, address: str) -> tuple[str, str]:
    """``e2rnas sweep status JOB``: the job's status (e.g. ``RUNNING``) and its log."""
    check_address(address, JOBS_PORT)
    jobs = RayJobs(address)
    status = jobs.status(job_id)
    if status is None:
        raise JobError(f"job {job_id!r} at {address}: Ray knows no such job")
    return status, jobs.logs_tail(job_id, lines=None)
