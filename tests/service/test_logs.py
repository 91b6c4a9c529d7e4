"""Logging: one line per event in the project's format, with the sweep id, at the chosen level."""

from __future__ import annotations

import contextlib
import io
import logging
import logging.config
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.logs import configure_logging, sweep_context, uvicorn_log_config

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+) "
    r"\[sweep (?P<sweep>[^\]]+)\] (?P<message>.*)$"
)


def _lines(text: str) -> list[dict[str, str]]:
    parsed = [LINE.match(line) for line in text.splitlines() if line]
    assert all(parsed), text
    return [match.groupdict() for match in parsed if match]


def test_lines_carry_level_logger_and_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    log = logging.getLogger("service.test")
    log.debug("not shown at info")
    log.info("outside any sweep")
    with sweep_context("quickstart-1a2b3c4d"):
        log.warning("inside it")
    log.info("explicit", extra={"sweep_id": "other-0"})
    lines = _lines(capsys.readouterr().err)
    assert [(x["level"], x["sweep"], x["message"]) for x in lines] == [
        ("INFO", "-", "outside any sweep"),
        ("WARNING", "quickstart-1a2b3c4d", "inside it"),
        ("INFO", "other-0", "explicit"),
    ]
    assert {x["logger"] for x in lines} == {"service.test"}


def test_configuring_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    configure_logging("warning")
    logging.getLogger("service.test").warning("once")
    logging.getLogger("service.test").info("filtered out")
    assert [x["message"] for x in _lines(capsys.readouterr().err)] == ["once"]


def test_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stderr replaced after configuring gets the lines; once it is closed and put back,
    # logging writes to the real stderr again instead of failing on the closed file.
    configure_logging("info")
    replaced = io.StringIO()
    with contextlib.redirect_stderr(replaced):
        logging.getLogger("service.test").info("while replaced")
    text = replaced.getvalue()
    replaced.close()
    assert [x["message"] for x in _lines(text)] == ["while replaced"]
    errors: list[object] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda _self, _r: errors.append(_r))
    logging.getLogger("service.test").info("after the replacement closed")
    assert errors == []


def test_each_thread_logs_its_own_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")

    def work(sweep_id: str) -> None:
        with sweep_context(sweep_id):
            logging.getLogger("service.test").info("refreshed")

    threads = [threading.Thread(target=work, args=(f"s-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(x["sweep"] for x in _lines(capsys.readouterr().err)) == [
        f"s-{i}" for i in range(4)
    ]


def test_uvicorn_log_config_is_a_valid_dict_config() -> None:
    config = uvicorn_log_config("warning")
    logging.config.dictConfig(config)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).level == logging.WARNING


def test_the_command_line_takes_a_log_level(tmp_path: Path) -> None:
    # A command that ends in a second, before any torch import: its own error (a bound of -1)
    # shows that the level was taken and the command ran.
    command = [sys.executable, "-m", "service.cli", "--log-level", "nonsense"]
    command += ["search", "--preset", "cpu-tiny", "--set", "L=-1", "--out", "never"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--log-level" in done.stderr, done.stderr
    command[4] = "debug"
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--log-level" not in done.stderr, done.stderr
    assert done.stderr.startswith("e2rnas: error: L: got -1.0"), done.stderr
