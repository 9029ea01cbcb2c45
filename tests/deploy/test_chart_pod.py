"""The Helm chart's Pod, run for real: `helm template` renders the chart with its default values
(the image built here, models on the chart's PersistentVolumeClaim), and `podman kube play` runs
the Deployment, its ConfigMap and the claim. No Kubernetes cluster exists here: the probes are
checked by asking the same endpoints they name, and the scheduling is podman's."""
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, engine, run

RELEASE = "kubeplay"


def helm():
    proc = subprocess.run(["bash", str(ROOT / "scripts/k8s_tools.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "helm" / "helm")


def pod_ip(container):
    info = json.loads(run("inspect", container).stdout)[0]
    for net in (info.get("NetworkSettings", {}).get("Networks") or {}).values():
        if net.get("IPAddress"):
            return net["IPAddress"]
    return info["NetworkSettings"]["IPAddress"]


def test_the_rendered_pod_runs_under_podman_kube_play(image, tmp_path, model_dir):
    if engine() != "podman":
        pytest.skip("podman kube play needs podman (docker has no equivalent)")
    repository, tag = image.rsplit(":", 1)
    rendered = subprocess.run([helm(), "template", RELEASE, str(ROOT / "deploy/helm/mmserve"),
                               "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                               "--set", "image.pullPolicy=Never"],
                              capture_output=True, text=True, check=True).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    # What podman plays: the Deployment and what its Pod mounts (Services, HPA, PDB are cluster
    # objects with no podman meaning).
    playable = [o for o in objects if o["kind"] in ("Deployment", "ConfigMap", "PersistentVolumeClaim")]
    deployment = next(o for o in playable if o["kind"] == "Deployment")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]
    assert claims, deployment["spec"]["template"]["spec"]["volumes"]
    # podman plays a claim as a named volume (and refuses one that exists): play the claim first,
    # fill its volume with the model (as a PVC filled beforehand would be), then the rest.
    claim_file = tmp_path / "claim.yaml"
    claim_file.write_text(yaml.safe_dump_all([o for o in playable if o["kind"] == "PersistentVolumeClaim"]))
    play = tmp_path / "play.yaml"
    play.write_text(yaml.safe_dump_all([o for o in playable if o["kind"] != "PersistentVolumeClaim"]))
    run("volume", "rm", "-f", claims[0], check=False)
    run("kube", "play", claim_file)
    run("run", "--rm", "--user", "0", "--entrypoint", "cp", "-v", f"{claims[0]}:/models",
        "-v", f"{model_dir}:/src:ro", image, "-r", "/src/.", "/models/")
    try:
        t0 = time.time()
        run("kube", "play", play, timeout=300)
        containers = [c for c in json.loads(run("ps", "--format", "json").stdout)
                      if any(RELEASE in n for n in c.get("Names", []))
                      and not c.get("IsInfra")]
        assert containers, run("ps", "-a").stdout
        name = containers[0]["Names"][0]
        ip = pod_ip(name)
        deadline = time.time() + 300
        while True:
            status, _ = http_ip(ip, "GET", "/ready")
            if status == 200:
                break
            assert time.time() < deadline, run("logs", name).stderr[-3000:]
            time.sleep(0.5)
        print(f"kube play pod start to ready: {time.time() - t0:.1f} s")
        assert http_ip(ip, "GET", "/health")[0] == 200  # the liveness probe's path
        status, raw = http_ip(ip, "POST", "/v1/inference",
                              {"input": "Once upon a time", "task": "text-gen", "parameters": {"max_tokens": 8}})
        assert status == 200 and json.loads(raw)["output"], raw
        info = json.loads(run("inspect", name).stdout)[0]
        assert info["Config"]["User"] in ("10001", "10001:10001"), info["Config"]["User"]
        assert info["HostConfig"]["ReadonlyRootfs"] is True
    finally:
        run("kube", "down", play, check=False)
        run("kube", "down", claim_file, check=False)
        run("volume", "rm", "-f", claims[0], check=False)


def http_ip(ip, method, path, body=None):
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ip}:8080{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""
