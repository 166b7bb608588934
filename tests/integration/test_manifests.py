"""Containers and manifests, checked without a Docker engine or a cluster.

Each file is validated against its official schema: compose.yaml against the Compose
specification (check-jsonschema's vendored copy), every rendered Kubernetes object against the
Kubernetes OpenAPI schemas of K8S_VERSION (kubernetes-validate), the Prefect work-pool
templates by prefect-kubernetes' own models. Then cross-references: every path, port, probe,
image and variable a manifest names exists in the code or the repository.

The overlays are rendered by the real `kubectl kustomize` (Debian's kubectl ships Kustomize
5.5; infra/system/install-packages.sh installs it), and every rendered object is validated
strictly. The security wiring is checked too: tokens and keys come from Secrets, no server
listens beyond loopback without a token, MLflow is reachable only through its NetworkPolicy,
and compose's monitoring targets are compose service names.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, require_program

K8S_VERSION = "1.33.0"
INFRA = REPO / "infra"
OVERLAYS = sorted(p.name for p in (INFRA / "k8s/overlays").iterdir())
SECRET = "flywheel-services"
IMAGES = {"flywheel", "flywheel-worker"}  # the bento (bentofile name) and infra/docker's image
# Written by the monitoring work; their absence skips the check that needs them, with a reason.
MONITORING = ("infra/prometheus", "infra/alertmanager", "infra/grafana")
SIGNING_SECRET = "flywheel-signing"  # the keyring, mounted as a file (docs/security-signing.md)
REGISTRY_CLIENT = "flywheel.io/registry-client"  # what MLflow's NetworkPolicy admits


# --- rendering -------------------------------------------------------------------------------


@functools.cache
def _kustomize(folder: Path) -> str:
    kubectl = require_program("kubectl")
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {folder}: {done.stderr}"
    return done.stdout


def render(folder: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize <folder>` prints, parsed (a fresh copy per call)."""
    return [doc for doc in yaml.safe_load_all(_kustomize(folder)) if doc]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(pod.get("containers", []))


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# --- shared facts from the code ---------------------------------------------------------------


def served_routes() -> set[str]:
    """The service's own routes plus BentoML's built-in health and metrics routes."""
    import bentoml._internal.server.base_app as base_app

    builtin = {
        p for p in ("/livez", "/readyz", "/metrics") if f'"{p}"' in inspect.getsource(base_app)
    }
    service = (REPO / "src/flywheel/serving/service.py").read_text()
    return builtin | set(re.findall(r'route="(/[^"]*)"', service)) | {"/metadata"}


def settings_env() -> set[str]:
    """Every FLYWHEEL_* variable the code reads: the settings', and the scope tokens'."""
    from flywheel.settings import Settings
    from flywheel.tokens import ENV_NAMES

    return {f"FLYWHEEL_{name.upper()}" for name in Settings.model_fields} | set(ENV_NAMES.values())


def serve_port() -> int:
    return int(yaml.safe_load((REPO / "params.yaml").read_text())["serve"]["port"])


def env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def image_uid(image: str) -> int:
    """The numeric user each image runs as: BentoML's for the bento, the Containerfile's."""
    from bentoml._internal.container.generate import BENTO_UID_GID

    if image.split(":")[0] == "flywheel":
        return BENTO_UID_GID
    (uid,) = re.findall(r"useradd .*--uid (\d+)", (INFRA / "docker/Containerfile").read_text())
    return int(uid)


def assert_runs_as_the_image_user(pod: dict[str, Any]) -> None:
    """runAsNonRoot with the image's user by number: kubelet refuses a named USER (both images
    name theirs) with "image has non-numeric user", and another uid would not own its home."""
    context = pod.get("securityContext", {})
    assert context.get("runAsNonRoot") is True
    for container in pod["containers"]:
        assert context["runAsUser"] == context["runAsGroup"] == image_uid(container["image"])


def assert_reads_the_signing_keyring(template: dict[str, Any]) -> None:
    """A pod that signs or verifies model versions (a pod template: metadata and spec).

    It may reach MLflow (the NetworkPolicy's label), finds the keyring where
    FLYWHEEL_SIGNING_KEY_FILE says, read-only from the `flywheel-signing` Secret (never a key
    of its own, which the service would refuse), and can read it: a Secret's files belong to
    root, so its non-root user reads the key through the pod's fsGroup, mode 0440.
    """
    assert template["metadata"]["labels"].get(REGISTRY_CLIENT) == "true"
    pod = template["spec"]
    assert_runs_as_the_image_user(pod)
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    key_file = Path(env["FLYWHEEL_SIGNING_KEY_FILE"]["value"])
    assert key_file.name == "signing.key"  # the Secret's key (README: --from-file=signing.key=)
    (mount,) = [m for m in container.get("volumeMounts", [])
                if key_file.parent == Path(m["mountPath"])]
    (volume,) = [v for v in pod.get("volumes", []) if v["name"] == mount["name"]]
    assert mount["readOnly"] is True and "subPath" not in mount  # subPath misses rotations
    assert volume["secret"] == {"secretName": SIGNING_SECRET, "defaultMode": 0o440}
    assert isinstance(pod["securityContext"].get("fsGroup"), int)


# --- compose --------------------------------------------------------------------------------

COMPOSE = INFRA / "compose/compose.yaml"


def test_compose_file_matches_the_compose_specification() -> None:
    checked = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_names_only_what_exists() -> None:
    text = COMPOSE.read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {
        "postgres",
        "s3",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "flywheel",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    # no secrets in the file: every ${VAR} is set in .env.example, and no literal password
    example = (INFRA / "compose/.env.example").read_text()
    defined = set(re.findall(r"^([A-Z_0-9]+)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z_0-9]+)", text))
    assert used <= defined, f"not in .env.example: {used - defined}"
    assert "change-me" not in text
    for name, service in services.items():
        if name != "s3-bucket":
            assert "healthcheck" in service or "depends_on" in service, name
        if "build" in service:
            assert (
                COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]
            ).is_file()
        flywheel_vars = {k for k in service.get("environment", {}) if k.startswith("FLYWHEEL_")}
        assert flywheel_vars <= settings_env(), name
    assert services["flywheel"]["ports"] == [f"127.0.0.1:{serve_port()}:{serve_port()}"]
    assert "/readyz" in str(services["flywheel"]["healthcheck"]["test"])
    assert "/readyz" in served_routes()
    assert set(compose["volumes"]) == {
        v.split(":")[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    _bind_mounts_exist(services)


def _bind_mounts_exist(services: dict[str, Any]) -> None:
    missing = []
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (COMPOSE.parent / source).resolve()
                if not path.exists():
                    missing.append(str(path.relative_to(REPO)))
    unexpected = [m for m in missing if not m.startswith(MONITORING)]
    assert not unexpected, f"compose mounts missing files: {unexpected}"
    if missing:
        pytest.skip(f"monitoring configs not in this checkout yet: {missing}")


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_matches_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    docs = render(INFRA / "k8s/overlays" / overlay)
    assert {d["kind"] for d in docs} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"].startswith("flywheel")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_names_only_what_exists(overlay: str) -> None:
    docs = render(INFRA / "k8s/overlays" / overlay)
    deployments = by_kind(docs, "Deployment")
    service = deployments["flywheel-service"]["spec"]["template"]
    (container,) = service["spec"]["containers"]
    port = serve_port()
    assert container["ports"][0]["containerPort"] == port
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    routes = served_routes()
    assert service["metadata"]["annotations"]["prometheus.io/path"] in routes
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert container["resources"]["requests"] and container["resources"]["limits"]
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for c in _containers(deployment):
            assert c["image"].split(":")[0] in IMAGES
            assert {n for n in env_names(c) if n.startswith("FLYWHEEL_")} <= settings_env()
            refs = [
                e["valueFrom"]["secretKeyRef"]
                for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            ]
            assert all(ref["name"] == SECRET for ref in refs)  # referenced, never inlined
    assert not by_kind(docs, "Secret")
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in by_kind(docs, kind).values():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert any(
                selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                for d in deployments.values()
            ), obj["metadata"]["name"]
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = by_kind(docs, "PodDisruptionBudget")["flywheel-service"]
    assert (
        pdb["spec"]["minAvailable"]
        < by_kind(docs, "HorizontalPodAutoscaler")["flywheel-service"]["spec"]["minReplicas"] + 1
    )  # a drain can always evict one pod


def test_readme_secret_holds_every_key_the_manifests_read() -> None:
    """The README's `kubectl create secret` makes every key a manifest needs from the Secret."""
    readme = (REPO / "README.md").read_text()
    continued = r"(?:.|\\\n)*?\n(?!  )"  # up to the first line not continued by a backslash
    (command,) = re.findall(rf"kubectl -n flywheel create secret generic {SECRET} " + continued,
                            readme)
    created = set(re.findall(r"--from-literal=([a-z0-9-]+)=", command))
    required = {
        ref["key"]
        for overlay in OVERLAYS
        for doc in render(INFRA / "k8s/overlays" / overlay)
        for c in _containers(doc)
        for e in c.get("env", [])
        if (ref := e.get("valueFrom", {}).get("secretKeyRef")) and not ref.get("optional")
    }
    assert f"generic {SECRET} " in command
    assert required and required <= created, f"not created by the README: {required - created}"
    signing = rf"create secret generic {SIGNING_SECRET} \\\n *--from-file=signing.key="
    assert re.search(signing, readme)


# --- security wiring (issue 18) ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_k8s_service_has_a_token_and_the_signing_keyring_from_secrets(overlay: str) -> None:
    docs = render(INFRA / "k8s/overlays" / overlay)
    pod = by_kind(docs, "Deployment")["flywheel-service"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    # bentoml serve listens on 0.0.0.0 in the pod: never without a token
    assert env["FLYWHEEL_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET, "key": "api-token"}
    for variable, key in (("FLYWHEEL_FEEDBACK_TOKEN", "feedback-token"),
                          ("FLYWHEEL_ADMIN_TOKEN", "admin-token")):  # shared by every replica
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": key}
    assert_reads_the_signing_keyring(
        by_kind(docs, "Deployment")["flywheel-service"]["spec"]["template"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_is_reachable_only_by_registry_clients(overlay: str) -> None:
    docs = render(INFRA / "k8s/overlays" / overlay)
    policy = by_kind(docs, "NetworkPolicy")["flywheel-mlflow"]["spec"]
    mlflow = by_kind(docs, "Deployment")["flywheel-mlflow"]["spec"]["template"]["metadata"]
    assert policy["podSelector"]["matchLabels"].items() <= mlflow["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"flywheel.io/registry-client":
                                                              "true"}}}]
    clients = [by_kind(docs, "Deployment")["flywheel-service"],
               by_kind(render(TRAINING), "Job")["flywheel-train"],
               *(flow_run_job(json.loads((TEMPLATES / name).read_text()), {})
                 for name in JOB_TEMPLATES)]  # the scheduled pipeline runs
    for client in clients:
        labels = client["spec"]["template"]["metadata"]["labels"]
        assert labels[REGISTRY_CLIENT] == rule["from"][0]["podSelector"]["matchLabels"][
            REGISTRY_CLIENT]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_non_root_pods_run_as_their_image_user_by_number(overlay: str) -> None:
    pods = [d["spec"]["template"]["spec"] for d in render(INFRA / "k8s/overlays" / overlay)
            + render(TRAINING) if d["kind"] in {"Deployment", "Job"}]
    pods += [flow_run_job(json.loads((TEMPLATES / name).read_text()), {})["spec"]["template"]
             ["spec"] for name in JOB_TEMPLATES]
    assert pods
    for pod in pods:
        assert_runs_as_the_image_user(pod)


def test_compose_listeners_have_tokens_and_keys_from_secrets() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services, secrets = compose["services"], compose["secrets"]
    assert {s["file"] for s in secrets.values()} == {
        "./secrets/signing.key", "./secrets/alert-receiver.token"}
    assert "secrets/" in (REPO / ".gitignore").read_text()
    assert services["flywheel"]["environment"]["FLYWHEEL_API_TOKEN"].startswith(
        "${FLYWHEEL_API_TOKEN:?")
    for name, service in services.items():
        key_file = service.get("environment", {}).get("FLYWHEEL_SIGNING_KEY_FILE")
        if key_file:
            assert key_file == "/run/secrets/signing_key" and "signing_key" in service.get(
                "secrets", []), name
    receiver = services["alert-receiver"]
    assert "0.0.0.0" in receiver["command"]
    assert receiver["environment"]["FLYWHEEL_ALERT_TOKEN_FILE"] == (
        "/run/secrets/alert_receiver_token")
    assert "alert_receiver_token" in services["alertmanager"]["secrets"]


def test_compose_flow_runs_sign_with_the_service_key() -> None:
    """Flow runs (promote signs, evaluate and batch scoring verify) run inside the Prefect
    process worker: it has the very secret the service verifies with, at the same path."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    runners = {name for name, s in services.items() if s.get("command", [])[:2] == [
        "prefect", "worker"]}
    assert runners == {"prefect-worker"}
    for name in runners | {"flywheel"}:
        assert services[name]["environment"]["FLYWHEEL_SIGNING_KEY_FILE"] == (
            "/run/secrets/signing_key"), name
        assert services[name]["secrets"] == ["signing_key"], name


def test_compose_monitoring_configs_are_the_shipped_ones_with_compose_addresses() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    prom = yaml.safe_load((INFRA / "compose/prometheus.yml").read_text())
    shipped = yaml.safe_load((INFRA / "prometheus/prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for t in job["static_configs"][0]["targets"]]
    targets += prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        host, port = target.split(":")
        assert host in services, f"{target}: not a compose service"
    assert targets == ["flywheel:3000", "monitor-exporter:9108", "alertmanager:9093"]
    assert _without_addresses(prom) == _without_addresses(shipped)
    am = yaml.safe_load((INFRA / "compose/alertmanager.yml").read_text())
    shipped_am = yaml.safe_load((INFRA / "alertmanager/alertmanager.yml").read_text())
    hook = _webhook(am)
    assert hook["url"] == "http://alert-receiver:9095/alerts"
    assert hook["http_config"]["authorization"]["credentials_file"] == (
        "/run/secrets/alert_receiver_token")
    assert _webhook(shipped_am)["http_config"]["authorization"]["credentials_file"].endswith(
        ".flywheel/alert-receiver.token")
    for config in (am, shipped_am):
        _webhook(config).pop("url")
        _webhook(config).pop("http_config")
    assert am == shipped_am
    amtool = require_program("amtool")
    for path in (INFRA / "compose/alertmanager.yml", INFRA / "alertmanager/alertmanager.yml"):
        checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True,
                                 text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def _webhook(config: dict[str, Any]) -> dict[str, Any]:
    receiver = next(r for r in config["receivers"] if r["name"] == "flywheel-retrain")
    return receiver["webhook_configs"][0]  # type: ignore[no-any-return]


def _without_addresses(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = []
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = []
    return config


# --- multi-node training ---------------------------------------------------------------------

TRAINING = INFRA / "k8s/training"


def test_training_job_matches_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    docs = render(TRAINING)
    assert {d["kind"] for d in docs} == {"Job", "Service", "PersistentVolumeClaim"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "flywheel"


def test_training_job_names_only_what_exists() -> None:
    from torch.distributed.run import get_args_parser

    from flywheel.steps.dag import STEP_NAMES

    docs = render(TRAINING)
    job, service = by_kind(docs, "Job")["flywheel-train"], by_kind(docs, "Service")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # torchrun accepts the arguments as Kubernetes expands them, and runs our train step
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    assert container["command"] == ["torchrun"]
    parsed = get_args_parser().parse_args(args)
    assert (parsed.module, parsed.training_script, parsed.training_script_args) == (
        True, "flywheel.cli", ["step", "train"]
    )  # fmt: skip
    assert "train" in STEP_NAMES and 'if __name__ == "__main__":' in inspect.getsource(
        importlib.import_module("flywheel.cli")  # not sys.modules: this file may run alone
    )
    # one pod per node, each with its GPUs; node i is <job>-i.<headless service>
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(parsed.nnodes)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == int(parsed.nproc_per_node)
    assert parsed.rdzv_backend == "c10d" and parsed.max_restarts == 0
    rdzv = service[pod["subdomain"]]
    assert rdzv["spec"]["clusterIP"] == "None"
    assert rdzv["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    port = rdzv["spec"]["ports"][0]["port"]
    assert parsed.rdzv_endpoint == f"{job['metadata']['name']}-0.{pod['subdomain']}:{port}"
    assert port in {p["containerPort"] for p in container["ports"]}
    # image, settings, secret and volumes are ones that exist
    assert container["image"].split(":")[0] in IMAGES
    assert {n for n in env if n.startswith("FLYWHEEL_")} <= settings_env()
    assert container["envFrom"] == [{"secretRef": {"name": SECRET}}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} == set(volumes)
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert volumes["project"]["persistentVolumeClaim"]["claimName"] in claims
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(env["FLYWHEEL_ARTIFACTS_DIR"].startswith(path) for path in mounted)


# --- candidate fits on Dask -------------------------------------------------------------------

DASK = INFRA / "k8s/dask"
DASK_MEMBER = "flywheel.io/dask-member"  # what the Dask NetworkPolicy admits


def dask_cli(container: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The `dask SUBCOMMAND` a container runs, parsed by the subcommand's own click command
    (found through dask's `dask_cli` entry points, as the `dask` program finds it)."""
    from importlib.metadata import entry_points

    assert container["command"] == ["dask"]
    sub, *args = container["args"]
    (command,) = [e.load() for e in entry_points(group="dask_cli") if e.name == sub]
    env = {e["name"]: "4294967296" for e in container.get("env", [])}  # resolved by kubelet
    expanded = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]
    return sub, command.make_context(f"dask {sub}", expanded).params


def test_dask_manifests_match_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    docs = render(DASK)
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "NetworkPolicy", "Job"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "flywheel"


def test_dask_path_names_only_what_exists() -> None:
    """The train Job reaches the scheduler's Service by FLYWHEEL_DASK_ADDRESS alone; workers
    join that address; every flag is one the `dask` CLI accepts; the volume is training's."""
    docs = render(DASK)
    deployments, job = by_kind(docs, "Deployment"), by_kind(docs, "Job")["flywheel-train-dask"]
    service = by_kind(docs, "Service")["flywheel-dask-scheduler"]
    (scheduler,) = _containers(deployments["flywheel-dask-scheduler"])
    (worker,) = _containers(deployments["flywheel-dask-worker"])
    (train,) = job["spec"]["template"]["spec"]["containers"]
    sub, scheduled = dask_cli(scheduler)
    assert sub == "scheduler" and scheduled["host"] == "0.0.0.0"
    (comm,) = [p for p in service["spec"]["ports"] if p["name"] == "comm"]
    assert int(scheduled["port"]) == comm["port"]
    assert comm["targetPort"] in {p["name"] for p in scheduler["ports"]}
    address = f"tcp://{service['metadata']['name']}:{comm['port']}"
    env = {e["name"]: e.get("value") for e in train["env"]}
    assert env["FLYWHEEL_DASK_ADDRESS"] == address
    sub, working = dask_cli(worker)
    assert sub == "worker" and working["scheduler"] == address and working["nthreads"] == 1
    limit = next(e for e in worker["env"] if e["name"] == "MEMORY_LIMIT")
    assert limit["valueFrom"]["resourceFieldRef"]["resource"] == "limits.memory"
    assert worker["resources"]["limits"]["memory"]
    assert train["command"] == ["flywheel"] and train["args"] == ["step", "train"]
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= (
        deployments["flywheel-dask-scheduler"]["spec"]["template"]["metadata"]["labels"].items())
    for container in (scheduler, worker, train):
        assert container["image"].split(":")[0] in IMAGES
        assert {n for n in env_names(container) if n.startswith("FLYWHEEL_")} <= settings_env()
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    claims = by_kind(render(TRAINING), "PersistentVolumeClaim")
    assert volumes["project"]["persistentVolumeClaim"]["claimName"] in claims
    assert env["FLYWHEEL_ARTIFACTS_DIR"].startswith(train["volumeMounts"][0]["mountPath"])


def test_only_the_dask_members_reach_the_dask_cluster() -> None:
    """Dask runs whatever code it is sent: its NetworkPolicy covers the scheduler and the
    workers and admits only pods labelled as members, which the train Job is."""
    docs = render(DASK)
    (policy,) = by_kind(docs, "NetworkPolicy").values()
    selected = policy["spec"]["podSelector"]["matchLabels"]
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert selected == source["podSelector"]["matchLabels"] == {DASK_MEMBER: "true"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    templates = [d["spec"]["template"] for d in docs if d["kind"] in {"Deployment", "Job"}]
    assert len(templates) == 3
    for template in templates:
        assert template["metadata"]["labels"].items() >= selected.items()
        assert_runs_as_the_image_user(template["spec"])
    job = by_kind(docs, "Job")["flywheel-train-dask"]["spec"]["template"]
    assert job["metadata"]["labels"].get(REGISTRY_CLIENT) == "true"
    assert "flywheel-signing" not in json.dumps(job)  # trains; never signs


# --- Prefect Kubernetes work pools ----------------------------------------------------------

TEMPLATES = INFRA / "prefect"
JOB_TEMPLATES = ("k8s-job-template.json", "k8s-gpu-job-template.json")
SIGNING_SCHEDULE = ("nightly", "on-demand-gpu")  # prefect.yaml deployments whose flow promotes


def job_configuration(template: dict[str, Any], values: dict[str, Any]) -> Any:
    """What the worker builds for a flow run: variable defaults and values applied to the
    template, then its pydantic model (`from_template_and_values` without the API round trip
    for block references, which these templates do not use), then `prepare_for_flow_run` as
    the worker calls it (Prefect's env and labels merged in, env as a list of pairs)."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration as Configuration

    variables = Configuration._get_base_config_defaults(template["variables"]["properties"])
    variables.update(values)
    config = Configuration(**apply_values(copy.deepcopy(template["job_configuration"]), variables))
    config.prepare_for_flow_run(FlowRun(flow_id=uuid.UUID(int=1), name="manifest-test"))
    return config


def flow_run_job(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The Job the worker creates for one flow run of this template."""
    return job_configuration(template, values).job_manifest  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", JOB_TEMPLATES)
def test_job_template_is_accepted_by_prefect_kubernetes(name: str) -> None:
    import kubernetes_validate
    from prefect_kubernetes.worker import KubernetesWorker

    template = json.loads((TEMPLATES / name).read_text())
    default = KubernetesWorker.get_default_base_job_template()
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])
    job = flow_run_job(template, {"env": {"FLYWHEEL_TRACKING_URI": "http://m:5000"}})
    # strict, but for two fields prefect-kubernetes requires in the pod spec (its base manifest
    # has them there; they are Job fields, 1 by default, and a pod ignores them)
    pod = copy.deepcopy(job)["spec"]["template"]["spec"]
    assert (pod.pop("completions"), pod.pop("parallelism")) == (1, 1)
    kubernetes_validate.validate({**job, "spec": {**job["spec"], "template": {
        **job["spec"]["template"], "spec": pod}}}, K8S_VERSION, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].split(":")[0] in IMAGES
    assert container["envFrom"] == [{"secretRef": {"name": SECRET}}]
    assert {e["name"] for e in container["env"]} >= {"FLYWHEEL_TRACKING_URI"}


@pytest.mark.parametrize("name", JOB_TEMPLATES)
def test_scheduled_runs_sign_with_the_service_keyring_and_reach_mlflow(name: str) -> None:
    """The pipeline's flow runs promote (sign) and evaluate (verify): same keyring as the
    service, and the label MLflow's NetworkPolicy admits, whatever env and labels a deployment
    adds; an env that names the key file itself still wins (Prefect puts it first)."""
    template = json.loads((TEMPLATES / name).read_text())
    pools = {d["name"]: d["work_pool"]["name"]
             for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    assert {pools[d] for d in SIGNING_SCHEDULE} == {"default", "gpu"}  # both templates' pools
    job = flow_run_job(template, {"env": {"FLYWHEEL_TRACKING_URI": "http://m:5000"},
                                  "labels": {"team": "ml"}})
    assert_reads_the_signing_keyring(job["spec"]["template"])
    service = render(INFRA / "k8s/overlays" / OVERLAYS[0])
    service_pod = by_kind(service, "Deployment")["flywheel-service"]["spec"]["template"]["spec"]
    key_files = [
        {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        ["FLYWHEEL_SIGNING_KEY_FILE"] for pod in (service_pod, job["spec"]["template"]["spec"])
    ]
    assert key_files[0] == key_files[1]


def _drop_label(t: dict[str, Any]) -> None:
    t["job_configuration"]["job_manifest"]["spec"]["template"]["metadata"]["labels"].clear()


def _pod(t: dict[str, Any]) -> dict[str, Any]:
    return t["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


BREAKAGES = {
    "no registry-client label": _drop_label,
    "no key file variable": lambda t: _pod(t)["containers"][0].update(env="{{ env }}"),
    "no key mount": lambda t: _pod(t)["containers"][0]["volumeMounts"].pop(0),
    "no key volume": lambda t: _pod(t)["volumes"].pop(0),
    "a key of its own": lambda t: _pod(t)["volumes"].__setitem__(0, {"name": "signing",
                                                                    "emptyDir": {}}),
    "writable key": lambda t: _pod(t)["containers"][0]["volumeMounts"][0].pop("readOnly"),
    "key unreadable by its user": lambda t: _pod(t)["securityContext"].pop("fsGroup"),
    "named user": lambda t: _pod(t)["securityContext"].pop("runAsUser"),
}


@pytest.mark.parametrize("name", JOB_TEMPLATES)
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_template_without_the_key_or_the_label_fails_the_check(name: str,
                                                                 breakage: str) -> None:
    template = json.loads((TEMPLATES / name).read_text())
    BREAKAGES[breakage](template)
    with pytest.raises((AssertionError, KeyError, ValueError)):
        assert_reads_the_signing_keyring(flow_run_job(template, {})["spec"]["template"])


def test_gpu_template_is_the_cpu_one_plus_gpus() -> None:
    cpu = json.loads((TEMPLATES / "k8s-job-template.json").read_text())
    gpu = json.loads((TEMPLATES / "k8s-gpu-job-template.json").read_text())

    job = flow_run_job(gpu, {"gpu_count": 2})
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["image"] == "flywheel-worker:cuda"

    # Everything else is the CPU pool's template, so the two cannot drift apart.
    gpu_props, cpu_props = gpu["variables"]["properties"], cpu["variables"]["properties"]
    assert set(gpu_props) - set(cpu_props) == {"gpu_count"}
    for name in cpu_props:
        if name != "image":
            assert gpu_props[name] == cpu_props[name], name
    gpu_pod = gpu["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    for key in ("tolerations", "nodeSelector"):
        gpu_pod.pop(key)
    gpu_pod["volumes"] = [v for v in gpu_pod["volumes"] if v["name"] != "dshm"]
    (container,) = gpu_pod["containers"]
    container["resources"]["limits"].pop("nvidia.com/gpu")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "dshm"]
    assert gpu["job_configuration"] == cpu["job_configuration"]


def test_prefect_yaml_has_a_deployment_on_the_gpu_pool() -> None:
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    assert "gpu" in {d["work_pool"]["name"] for d in deployments}


# --- the worker image -------------------------------------------------------------------------


def test_containerfile_builds_from_files_that_exist_and_the_locked_torch() -> None:
    text = (INFRA / "docker/Containerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                if not source.startswith("--"):
                    assert (REPO / source).exists(), source
    pyproject = (REPO / "pyproject.toml").read_text()
    (pin,) = re.findall(r'"torch==([^"]+)"', pyproject)
    assert f'"torch=={pin}"' in text
    assert "uv sync --frozen" in text and "ARG TORCH_VARIANT=cpu" in text
