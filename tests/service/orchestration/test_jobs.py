"""``sweep submit``'s upload: the job's working directory holds the sweep file alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.orchestration.jobs import RayJobs


class RecordingClient:
    """Stands in for Ray's JobSubmissionClient: records what one submission would upload."""

    def __init__(self) -> None:
        self.uploaded: list[str] = []
        self.working_dir: Path | None = None
        self.entrypoint = ""

    def submit_job(
        self, entrypoint: str, submission_id: str | None, runtime_env: dict[str, Any]
    ) -> str:
        self.working_dir = Path(runtime_env["working_dir"])
        self.uploaded = sorted(
            str(p.relative_to(self.working_dir)) for p in self.working_dir.rglob("*")
        )
        self.entrypoint = entrypoint
        return submission_id or "job-1"


def test_submit_uploads_only_the_sweep_file(tmp_path: Path) -> None:
    folder = tmp_path / "sweeps"
    (folder / "private").mkdir(parents=True)
    (folder / "private" / "key.pem").write_text("secret")
    (folder / "big.bin").write_bytes(b"\0" * 1024)
    sweep = folder / "mine.yaml"
    sweep.write_text("name: t\n")
    jobs = RayJobs("http://127.0.0.1:8265")
    client = RecordingClient()
    jobs._client = client
    job_id = jobs.submit(tmp_path / "run", sweep, submission_id="s-0", upload=True)
    assert job_id == "s-0"
    assert client.uploaded == ["mine.yaml"]
    assert client.entrypoint.endswith(f"sweep run mine.yaml --out {(tmp_path / 'run').resolve()}")
    assert client.working_dir is not None and not client.working_dir.exists()  # cleaned up
    assert sorted(p.name for p in folder.iterdir()) == ["big.bin", "mine.yaml", "private"]


def test_free_ports_are_distinct_and_bindable() -> None:
    # An embedded head takes four ports at once (GCS, dashboard, agent, client server); one
    # port given to two of them and Ray refuses to start (seen once in the suite: the client
    # server and the dashboard were both handed 51471 by two separate probes).
    import socket

    from service.orchestration.addresses import free_ports

    for _ in range(50):
        ports = free_ports(16)
        assert len(set(ports)) == 16, ports
        assert all(1024 <= port <= 65535 for port in ports)
    for port in free_ports(4):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", port))  # nothing holds it any more
