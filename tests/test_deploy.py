"""Kubernetes manifests (deploy/k8s/), checked offline: no cluster, no network.

Core objects are validated against the Kubernetes OpenAPI schemas bundled by
`kubernetes-validate` (strict: unknown fields fail), KEDA's ScaledObject (a CRD) against
deploy/k8s/schemas/keda-scaledobject.schema.json; then the manifests are cross-checked
against the project: settings, queues, task time limits, the Dockerfile and docker-compose.yml.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KEDA_SCHEMA = K8S / "schemas" / "keda-scaledobject.schema.json"
# The oldest Kubernetes still commonly supported by managed offerings, and the newest the
# package ships: both must accept every object.
K8S_VERSIONS = ("1.31", kubernetes_validate.utils.latest_version())
NOT_CORE = {"Kustomization", "ScaledObject"}


# --- loading ---------------------------------------------------------------------------------
def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


DOCS = _documents()


def _env_file(name: str) -> dict[str, str]:
    pairs = {}
    for line in (K8S / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


CONFIG = _env_file("config.env")
SECRETS = _env_file("secrets.env.example")
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


DEPLOYMENTS = _of_kind("Deployment")
SCALED_OBJECTS = _of_kind("ScaledObject")


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _main(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod_spec(doc)["containers"]
    return container


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _is_worker(doc: dict[str, Any]) -> bool:
    return _main(doc)["command"][:4] == ["celery", "-A", "config", "worker"]


WORKERS = {name: doc for name, doc in DEPLOYMENTS.items() if _is_worker(doc)}
# Everything but Redis runs the project's image.
APP_WORKLOADS = {**DEPLOYMENTS, **_of_kind("Job")}


def _worker_queues(doc: dict[str, Any]) -> set[str]:
    return set(_option(_main(doc)["command"], "-Q").split(","))


def _generated(kind: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """What kustomize's configMapGenerator / secretGenerator make of an env file."""
    key = "data" if kind == "ConfigMap" else "stringData"
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, key: data}


# --- schemas ---------------------------------------------------------------------------------
def test_the_manifests_exist() -> None:
    assert {"Deployment", "StatefulSet", "Service", "Job", "ScaledObject"} <= {
        doc["kind"] for _, doc in DOCS
    }
    assert {"web", "beat", "worker-high", "worker-medium-low", "worker-scheduled"} <= set(
        DEPLOYMENTS
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "doc"),
    [
        *[(f, d) for f, d in DOCS if d["kind"] not in NOT_CORE],
        ("config.env", _generated("ConfigMap", "docflow-config", CONFIG)),
        ("secrets.env.example", _generated("Secret", "docflow-secrets", SECRETS)),
    ],
    ids=lambda value: value if isinstance(value, str) else value["kind"],
)
def test_core_objects_match_the_kubernetes_schema(
    filename: str, doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_kubernetes_schema_check_rejects_mistakes() -> None:
    """The check above has teeth: a misspelt field and a wrong type both fail (offline)."""
    typo = copy.deepcopy(DEPLOYMENTS["web"])
    _main(typo)["readinesProbe"] = _main(typo).pop("readinessProbe")
    wrong_type = copy.deepcopy(DEPLOYMENTS["beat"])
    wrong_type["spec"]["replicas"] = "one"
    for doc in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def _keda_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(KEDA_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(SCALED_OBJECTS))
def test_scaled_objects_match_the_keda_schema(name: str) -> None:
    scaled = SCALED_OBJECTS[name]
    _keda_validator().validate(scaled)
    # The HPA behavior KEDA passes through is Kubernetes' own type: check it with that schema.
    behavior = scaled["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
    if "behavior" in behavior:
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "maxReplicas": scaled["spec"]["maxReplicaCount"],
                "behavior": behavior["behavior"],
            },
        }
        kubernetes_validate.validate(hpa, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda t: t["metadata"].update(listLength=4),  # KEDA metadata is a map of strings
        lambda t: t["metadata"].pop("listName"),
        lambda t: t["metadata"].update(listname="high"),  # misspelt
        lambda t: t["metadata"].update(address="redis://redis:6379/0"),  # host:port only
        lambda t: t.update(metadatas={}),
    ],
)
def test_the_keda_schema_rejects_mistakes(breakage: Any) -> None:
    scaled = copy.deepcopy(SCALED_OBJECTS["worker-high"])
    breakage(scaled["spec"]["triggers"][0])
    with pytest.raises(jsonschema.ValidationError):
        _keda_validator().validate(scaled)


def test_kustomization_ties_every_manifest_together() -> None:
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == manifests
    assert KUSTOMIZATION["namespace"] == _of_kind("Namespace").popitem()[0]
    generated = {g["name"]: g["envs"] for g in KUSTOMIZATION["configMapGenerator"]}
    assert generated == {"docflow-config": ["config.env"]}
    secrets = {g["name"]: g["envs"] for g in KUSTOMIZATION["secretGenerator"]}
    assert secrets == {"docflow-secrets": ["secrets.env"]}
    # The real secrets file is written by the operator and never committed.
    assert "secrets.env" in (K8S / ".gitignore").read_text().split()
    assert "CHANGE-ME" in SECRETS["SECRET_KEY"]
    (image,) = KUSTOMIZATION["images"]
    assert image["name"] == "docflow"


# --- cross-checks with the project -----------------------------------------------------------
def _all_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_environment_variable_is_read_by_settings() -> None:
    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z0-9_]+)["']""", source))
    names = set(CONFIG) | set(SECRETS)
    for _, doc in DOCS:
        if "template" in doc.get("spec", {}):
            for container in _all_containers(doc):
                names |= {item["name"] for item in container.get("env", [])}
    assert names, "no environment found"
    assert names - read == set()
    # And what production must set is set.
    assert {"DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "ALLOWED_HOSTS"} <= names
    assert CONFIG["DEBUG"] == "false"


def test_every_app_container_gets_the_config_and_the_secrets() -> None:
    for name, doc in APP_WORKLOADS.items():
        for container in _all_containers(doc):
            refs = [
                ref.get("configMapRef", ref.get("secretRef"))["name"]
                for ref in container["envFrom"]
            ]
            assert refs == ["docflow-config", "docflow-secrets"], (name, container["name"])


def test_workers_consume_exactly_the_configured_queues() -> None:
    configured = {queue.name for queue in django_settings.CELERY_TASK_QUEUES}
    consumed = [queue for doc in WORKERS.values() for queue in _worker_queues(doc)]
    assert sorted(consumed) == sorted(configured)  # every queue once, no unknown queue
    assert set(WORKERS) == {"worker-high", "worker-medium-low", "worker-scheduled"}


def test_each_worker_pings_itself_and_is_pid_1() -> None:
    for name, doc in WORKERS.items():
        command = _main(doc)["command"]
        assert command[0] == "celery", f"{name}: a shell as PID 1 would not forward SIGTERM"
        node = _option(command, "-n")
        assert node.endswith("@%h")
        ping = _main(doc)["livenessProbe"]["exec"]["command"][-1]
        assert _option(shlex.split(ping), "-d") == node.replace("%h", "$HOSTNAME")


def _hard_time_limits_by_queue() -> dict[str, int]:
    """The longest hard time limit of the tasks a queue receives, as Celery routes them."""
    from config.celery import app

    app.loader.import_default_modules()
    limits: dict[str, int] = {}
    for name, task in app.tasks.items():
        if name.startswith("celery.") and name != "celery.backend_cleanup":
            continue
        queue = app.amqp.router.route({}, name, (), {})["queue"].name
        limit = task.time_limit or app.conf.task_time_limit
        limits[queue] = max(limits.get(queue, 0), limit)
    # Documents are also published to any of these queues explicitly (ingest_documents
    # --queue, imports), with the time limit the deployment's environment sets.
    document_limit = int(CONFIG["DOCFLOW_PROCESS_TIME_LIMIT"])
    for queue in ("high", "medium", "low"):
        limits[queue] = max(limits.get(queue, 0), document_limit)
    return limits


def test_workers_get_time_to_finish_the_task_in_hand() -> None:
    limits = _hard_time_limits_by_queue()
    assert limits["high"] >= int(CONFIG["DOCFLOW_PROCESS_TIME_LIMIT"]) == 660
    for name, doc in WORKERS.items():
        longest = max(limits[queue] for queue in _worker_queues(doc))
        grace = _pod_spec(doc)["terminationGracePeriodSeconds"]
        assert grace > longest, f"{name}: SIGKILL after {grace}s, tasks run up to {longest}s"
        assert "preStop" not in _main(doc).get("lifecycle", {})


def test_each_worker_deployment_is_autoscaled_on_its_own_queues() -> None:
    targets = {so["spec"]["scaleTargetRef"]["name"]: so for so in SCALED_OBJECTS.values()}
    assert set(targets) == set(WORKERS)  # never web's or beat's
    for name, doc in WORKERS.items():
        spec = targets[name]["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        lists = {t["metadata"]["listName"] for t in spec["triggers"] if t["type"] == "redis"}
        assert lists == _worker_queues(doc)
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        # Left to the autoscaler: `kubectl apply` must not reset the replica count.
        assert "replicas" not in doc["spec"]
    # The heartbeat behind /healthz needs a `scheduled` worker at all times.
    assert targets["worker-scheduled"]["spec"]["minReplicaCount"] >= 1


def test_keda_reads_the_broker_database() -> None:
    broker = urlsplit(CONFIG["CELERY_BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname in _of_kind("Service")
    namespace = KUSTOMIZATION["namespace"]
    for so in SCALED_OBJECTS.values():
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            # KEDA's operator runs in its own namespace: the short name would not resolve.
            assert meta["address"] == (
                f"{broker.hostname}.{namespace}.svc.cluster.local:{broker.port or 6379}"
            )
            assert meta["databaseIndex"] == (broker.path.strip("/") or "0")


def test_queue_depth_caveat_priority_sub_lists() -> None:
    """KEDA counts LLEN of `listName` only. kombu keeps priority-0 messages in the plain list
    and others in "<queue>\\x06\\x16<priority>" sub-lists (which operations.queues sums). Docflow
    publishes no priorities, so the plain list is the whole queue; this fails if that changes."""
    from kombu.transport.redis import Channel

    channel = Channel.__new__(Channel)  # class attributes only, no connection
    assert channel._q_for_pri("high", 0) == "high"
    assert channel._q_for_pri("high", 3) == "high\x06\x163"
    assert getattr(django_settings, "CELERY_TASK_DEFAULT_PRIORITY", None) is None
    pattern = re.compile(r"\bpriority\s*=|CELERY_TASK_DEFAULT_PRIORITY|task_default_priority")
    packages = [
        top
        for top in ROOT.iterdir()
        if top.is_dir() and not top.name.startswith(".") and top.name not in {"tests", "var"}
    ]
    offenders = [
        str(path.relative_to(ROOT))
        for top in packages
        for path in top.rglob("*.py")
        if pattern.search(path.read_text(errors="replace"))
    ]
    assert offenders == []


def test_beat_is_a_single_replica_never_overlapping() -> None:
    beat = DEPLOYMENTS["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    command = _main(beat)["command"]
    assert command[:4] == ["celery", "-A", "config", "beat"]
    assert "--pidfile=" in command  # the root filesystem is read-only
    probe = _main(beat)["livenessProbe"]["exec"]["command"]
    assert "heartbeat_age_seconds" in probe[-1]
    compile(probe[-1], "<probe>", "exec")
    beats = [d for d in DEPLOYMENTS.values() if "beat" in _main(d)["command"]]
    assert beats == [beat]


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe", "startupProbe"])
def test_web_probes_do_not_depend_on_shared_services(probe: str) -> None:
    """/healthz fails on a stale heartbeat or a broker outage, for every pod at once."""
    spec = _main(DEPLOYMENTS["web"])[probe]
    assert spec.get("httpGet", {}).get("path") != "/healthz"


def test_web_readiness_request_succeeds_without_database_or_broker(
    client: Any, settings: Any
) -> None:
    """Replay the kubelet's readiness request with production's host and HTTPS settings.
    No django_db mark: pytest-django refuses any query, so a probe that reads the database
    fails here (it would fail in the cluster whenever PostgreSQL does, on every pod)."""
    settings.ALLOWED_HOSTS = CONFIG["ALLOWED_HOSTS"].split(",")
    settings.SECURE_SSL_REDIRECT = CONFIG["SECURE_SSL_REDIRECT"] == "true"
    settings.DEBUG = False
    web = _main(DEPLOYMENTS["web"])
    get = web["readinessProbe"]["httpGet"]
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
    assert get["port"] in {p["name"] for p in web["ports"]}
    response = client.get(get["path"], headers=headers)
    assert 200 <= response.status_code < 400, response.status_code
    # Without the headers the kubelet's request would fail (pod IP as Host) or redirect.
    assert client.get(get["path"], HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_images_and_users_match_the_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"useradd\b.*--uid (\d+)", dockerfile).group(1))
    media_root = re.search(r"MEDIA_ROOT=(\S+)", dockerfile).group(1)
    port = int(re.search(r"^EXPOSE (\d+)", dockerfile, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])", dockerfile, re.M).group(1))

    for name, doc in APP_WORKLOADS.items():
        pod = _pod_spec(doc)
        assert pod["securityContext"]["runAsUser"] == uid, name
        for container in _all_containers(doc):
            assert container["image"] == "docflow", (name, container["name"])
    web = _main(DEPLOYMENTS["web"])
    assert web["command"][: len(cmd)] == cmd
    assert web["ports"] == [{"name": "http", "containerPort": port}]
    assert CONFIG["MEDIA_ROOT"] == media_root


def test_every_container_is_locked_down_and_sized() -> None:
    for _, doc in DOCS:
        if "template" not in doc.get("spec", {}):
            continue
        pod = _pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in _all_containers(doc):
            where = (doc["metadata"]["name"], container["name"])
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, where


def test_web_and_workers_share_a_read_write_many_media_volume() -> None:
    (claim,) = _of_kind("PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ["web", *WORKERS]:
        doc = DEPLOYMENTS[name]
        volumes = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in _pod_spec(doc)["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in _main(doc)["volumeMounts"]}
        assert volumes[mounts[CONFIG["MEDIA_ROOT"]]] == claim["metadata"]["name"], name


def test_redis_is_as_durable_as_in_docker_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_args = shlex.split(compose["services"]["redis"]["command"])[1:]
    (redis,) = _of_kind("StatefulSet").values()
    command = _main(redis)["command"]
    assert command[0] == "redis-server"
    for flag, value in zip(compose_args[::2], compose_args[1::2], strict=True):
        assert _option(command, flag) == value
    assert _option(command, "--appendfsync") == "everysec"
    assert _option(command, "--maxmemory-policy") == "noeviction"
    (template,) = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in _main(redis)["volumeMounts"]}
    assert mounts[template["metadata"]["name"]] == _option(command, "--dir")


def test_postgres_is_external_and_named_by_database_url() -> None:
    service = _of_kind("Service")["postgres"]
    assert service["spec"]["type"] == "ExternalName"
    url = urlsplit(SECRETS["DATABASE_URL"])
    assert url.scheme in {"postgres", "postgresql"}
    assert url.hostname == "postgres"
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert "postgres" not in _of_kind("StatefulSet")


def test_migrations_run_once_before_the_app_starts() -> None:
    (job,) = _of_kind("Job").values()
    assert _main(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name, doc in DEPLOYMENTS.items():
        if name in APP_WORKLOADS:
            (init,) = _pod_spec(doc)["initContainers"]
            assert "manage.py migrate --check" in init["command"][-1], name
            assert "migrate" not in " ".join(_main(doc)["command"]), name
