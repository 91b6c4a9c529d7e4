"""The command line's conventions: ``count --json``, one meaning per exit code (and every
``--help`` listing exactly the codes the code can end with), and shell completion.

The completion scripts are checked by the shells themselves: bash sources the script and runs
the completion function it registers, as it does on a TAB; zsh parses its script.
"""

from __future__ import annotations

import argparse
import ast
import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import service.cli as cli_package
from search_core.genotypes import BUNDLED
from service import cli, errors
from service.orchestration import rundir, tuner
from service.orchestration.spec import SweepSpec, load_sweep

SMALL_NETWORK = ["--classes", "5", "--layers", "6", "--init-channels", "8", "--input-size", "8"]
SWEEP = """\
name: conventions
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides: {epochs: 1, steps_per_epoch: 1}
evaluation: {mode: none}
grid: {L: [0.05], F: [0.6]}
resources: {gpu: 0, cpu: 1}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``e2rnas ARGV`` in this process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- count --json ---------------------------------------------------------------------------


def test_count_json_has_stable_keys_and_the_numbers_of_the_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text, err = run(["count", "darts_v2", *SMALL_NETWORK], capsys)
    assert (code, err) == (0, "")
    code, out, err = run(["count", "darts_v2", *SMALL_NETWORK, "--json"], capsys)
    assert (code, err) == (0, "")
    answer = json.loads(out)  # the whole of stdout is one JSON object
    assert list(answer) == [
        "source",
        "genotype_hash",
        "genotype",
        "dataset",
        "classes",
        "layers",
        "init_channels",
        "input_size",
        "in_channels",
        "params_m",
        "flops_m",
    ]
    genotype = BUNDLED["darts_v2"]
    assert answer["source"] == "darts_v2"
    assert answer["genotype_hash"] == genotype.genotype_hash()
    assert answer["genotype"] == genotype.to_json()
    network = [answer[k] for k in ("classes", "layers", "init_channels", "input_size")]
    assert (answer["dataset"], network, answer["in_channels"]) == ("cifar", [5, 6, 8, 8], 3)
    numbers = re.search(r"params_m (\S+)  flops_m (\S+)", text)
    assert numbers is not None, text
    assert [float(n) for n in numbers.groups()] == [answer["params_m"], answer["flops_m"]]
    assert answer["genotype_hash"] in text and answer["params_m"] > 0 and answer["flops_m"] > 0


# -- exit codes -----------------------------------------------------------------------------


def _command_paths(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command of the parser, as the words before ``--help``: ``()``, ``("sweep",)``,
    ``("sweep", "run")``, ... (argparse lists its subparsers only on its private actions)."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*path, name))


def _documented_codes(help_text: str) -> list[int]:
    """The codes of the help's ``exit status:`` table, in order."""
    _, found, table = help_text.partition("\nexit status:\n")
    assert found, help_text
    return [int(code) for code in re.findall(r"^  (\d+) +\S", table, flags=re.MULTILINE)]


def _codes_the_code_returns() -> set[int]:
    """The exit codes service/cli's code can end with, read from its source: the ``EXIT_*``
    constants it names, the numbers its ``-> int`` functions (the handlers, ``main``) return
    as written (the success, 0), and the codes of ``errors.ERRORS`` that ``main`` returns
    through ``exit_code``."""
    codes = {code for _, code, _ in errors.ERRORS}
    for source in Path(cli_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name) and node.id.startswith("EXIT_"):
                value = getattr(errors, node.id)
                if isinstance(value, int):
                    codes.add(value)
            elif isinstance(node, ast.FunctionDef) and ast.unparse(node.returns or node) == "int":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Constant):
                        assert isinstance(inner.value.value, int), ast.unparse(inner)
                        codes.add(inner.value.value)
    return codes


def test_each_exit_code_has_one_meaning() -> None:
    codes = [code for code, _ in errors.EXIT_STATUSES]
    meanings = [meaning for _, meaning in errors.EXIT_STATUSES]
    assert len(set(codes)) == len(codes), codes
    assert len(set(meanings)) == len(meanings), meanings
    # The named codes are the table's, and no two name the same number (failed trials were
    # once the same 1 as a full disk).
    named = {name: getattr(errors, name) for name in dir(errors) if name.startswith("EXIT_")}
    numbers = {name: value for name, value in named.items() if isinstance(value, int)}
    assert len(set(numbers.values())) == len(numbers), numbers
    assert set(numbers.values()) | {0} == set(codes)


def test_every_help_lists_exactly_the_exit_codes_the_code_paths_use(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as usage:
        cli.main(["--no-such-flag"])
    capsys.readouterr()
    used = _codes_the_code_returns() | {usage.value.code}
    assert used == {code for code, _ in errors.EXIT_STATUSES}
    paths = list(_command_paths(cli.build_parser()))
    assert ("sweep", "run") in paths and ("count",) in paths and ("completion",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as done:
            cli.main([*path, "--help"])
        assert done.value.code == 0
        documented = _documented_codes(capsys.readouterr().out)
        assert documented == [code for code, _ in errors.EXIT_STATUSES], path
        assert set(documented) == used, path


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run directory holding a sweep that has not run (no trials yet)."""
    monkeypatch.delenv("E2RNAS_DATA_ROOTS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    folder = tmp_path / "run"
    folder.mkdir()
    rundir.create_state(load_sweep(path), folder, f"sqlite:///{folder / 'results.db'}")
    return folder


@pytest.mark.parametrize(
    ("ends", "code", "says"),
    [
        ("failed", errors.EXIT_FAILED, "some trials failed"),
        ("interrupted", errors.EXIT_INTERRUPTED, "interrupted"),
        ("done", 0, None),
    ],
)
def test_a_sweep_exits_with_the_code_of_how_it_ended(
    ends: str,
    code: int,
    says: str | None,
    run_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run_sweep(spec: SweepSpec, folder: Path, **options: object) -> None:
        assert options.get("resume") is True
        rundir.set_status(folder, ends)

    monkeypatch.setattr(tuner, "run_sweep", run_sweep)  # the trials, without Ray
    got, out, err = run(["sweep", "resume", str(run_dir)], capsys)
    assert got == code, err
    assert f": {ends}" in out.splitlines()[0]
    if says is None:
        assert err == ""
    else:
        assert says in err and len(err.splitlines()) == 1, err
    status, _, _ = run(["sweep", "status", str(run_dir)], capsys)
    assert status == (errors.EXIT_FAILED if ends == "failed" else 0)


def test_usage_errors_exit_2_from_argparse_and_from_the_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["count"])
    assert usage.value.code == errors.EXIT_BAD_INPUT
    assert "GENOTYPE" in capsys.readouterr().err
    code, out, err = run(["count", "darts_v2", "--layers", "0"], capsys)
    assert (code, out) == (errors.EXIT_BAD_INPUT, "")
    assert err.startswith("e2rnas: error: --layers: got 0;") and err.count("\n") == 1


class _FullDisk(io.StringIO):
    """A standard output on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_os_error_exits_with_its_own_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    code = cli.main(["completion", "bash"])
    monkeypatch.undo()
    assert code == errors.EXIT_OS_ERROR
    assert capsys.readouterr().err == f"e2rnas: error: {os.strerror(errno.ENOSPC)}\n"


# -- shell completion -----------------------------------------------------------------------


def completion_script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(["completion", shell], capsys)
    assert (code, err) == (0, "")
    return out


# The words typed so far, the last being the one TAB completes: bash fills COMP_WORDS and
# COMP_CWORD so, then calls the function the script registered with `complete -F`.
BASH_TAB = r"""
source "$1"
shift
function=$(complete -p e2rnas | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMPREPLY=()
"$function"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_tab(script: Path, *words: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_TAB, "tab", str(script), *words],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_actions_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "e2rnas.bash"
    script.write_text(completion_script("bash", capsys), encoding="utf-8")
    (tmp_path / "quickstart.yaml").write_text(SWEEP, encoding="utf-8")
    assert bash_tab(script, "e2rnas", "sw", cwd=tmp_path) == ["sweep"]
    actions = bash_tab(script, "e2rnas", "sweep", "", cwd=tmp_path)
    assert sorted(actions) == ["resume", "run", "status", "submit"]
    assert bash_tab(script, "e2rnas", "sweep", "run", "quick", cwd=tmp_path) == ["quickstart.yaml"]
    assert bash_tab(script, "e2rnas", "--log-level", "w", cwd=tmp_path) == ["warning"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_parses_its_completion_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "_e2rnas"
    script.write_text(completion_script("zsh", capsys), encoding="utf-8")
    assert script.read_text(encoding="utf-8").startswith("#compdef e2rnas")
    result = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
