"""``make deploy-check``: what CI can prove about ``deploy/`` without a cluster.

1. ``kubectl kustomize`` renders every kustomization (base, kafka, postgres, each overlay);
2. every manifest they render, and the standalone ones, is validated: core kinds against the
   Kubernetes schemas (``kubernetes-validate``, strict: unknown fields fail), the operators' kinds
   (Strimzi, CloudNativePG, KEDA) against the project's own schemas in ``deploy/schemas/``;
3. the production overlay keeps its promises: replication 3 and min.insync 2 on every topic, each
   department's user reading only its own topic and writing only the responses, each service's
   user only its own topics, a budget, autoscaler (capped at the partitions) and network policy per
   service, production settings in the ConfigMap;
4. ``promtool check rules`` and ``promtool test rules`` (not ``check config``: Debian's promtool is
   built without Kubernetes service discovery, which prometheus.yml uses);
5. ``whistle deploy-render --check``: the generated files are what the code renders.

``--root`` checks a copy of the repository's ``deploy/`` (the tests corrupt one)."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from shared import contract
from tools import deploy_render

# kubernetes-validate parses its schema files (the definitions are megabytes) on every call; read
# once, they cut the validation of a few hundred manifests from seconds to a fraction.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = "1.33.0"  # the oldest minor the manifests are meant for
Doc = dict[str, Any]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def tool(name: str) -> str:
    """A command from this Python's environment first (kubectl comes from PyPI), then from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"deploy-check: {name} is missing; `make deploy-tools` installs it")
    return found


def kustomizations(k8s: Path) -> list[Path]:
    return sorted(p.parent for p in k8s.rglob("kustomization.yaml"))


def kustomize(directory: Path, report: Report) -> list[Doc]:
    done = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        report.fail(str(directory), "kustomize failed: " + done.stderr.strip()[:500])
        return []
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def standalone(k8s: Path) -> Iterator[tuple[str, Doc]]:
    """Manifests applied by hand, outside every kustomization (templates, the optional topics Job)."""
    for path in sorted(k8s.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield str(path), doc


# ---- schemas ---------------------------------------------------------------------------------------


def validate(where: str, doc: Doc, schemas: Path, report: Report) -> None:
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = f"{where} {kind}/{doc.get('metadata', {}).get('name', '?')}"
    own = schemas / api / f"{kind}.json"
    if own.exists():
        schema = json.loads(own.read_text())
        for error in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            path = "/".join(map(str, error.absolute_path))
            report.fail(name, f"{path}: {error.message}"[:400])
        return
    if "." in api.split("/")[0] and not api.split("/")[0].endswith(".k8s.io"):
        report.fail(name, f"no schema for {api} {kind}: add deploy/schemas/{api}/{kind}.json")
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.path))
        report.fail(name, f"{path}: {exc.message}"[:400])
    except kubernetes_validate.SchemaNotFoundError:
        report.fail(name, f"unknown kind {api} {kind}")


# ---- what production promises ------------------------------------------------------------------------


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def acl_topics(user: Doc, operation: str) -> set[str]:
    return {
        a["resource"]["name"]
        for a in user["spec"]["authorization"]["acls"]
        if a["resource"]["type"] == "topic" and operation in a["operations"]
    }


def promises(where: str, docs: list[Doc], report: Report) -> None:
    topics = {t["spec"]["topicName"]: t for t in by_kind(docs, "KafkaTopic").values()}
    for name, t in topics.items():
        if t["spec"]["replicas"] != deploy_render.REPLICATION:
            report.fail(
                where, f"topic {name} has {t['spec']['replicas']} replicas, not {deploy_render.REPLICATION}"
            )
        if t["spec"]["config"]["min.insync.replicas"] != deploy_render.MIN_INSYNC:
            report.fail(where, f"topic {name}: min.insync.replicas is not {deploy_render.MIN_INSYNC}")
    users = by_kind(docs, "KafkaUser")
    for name, user in users.items():
        for a in user["spec"]["authorization"]["acls"]:
            r = a["resource"]
            if r["type"] == "topic" and (r["patternType"] != "literal" or r["name"] not in topics):
                report.fail(
                    where, f"user {name} is granted {r['patternType']} topic {r['name']}, not one of ours"
                )
            if r["type"] == "cluster" or "All" in a["operations"]:
                report.fail(where, f"user {name} is granted {a['operations']} on {r['type']}")
        if name.startswith("dept-"):
            own = {
                t
                for t in topics
                if t.startswith("dispatch.") and deploy_render.k8s_name(t) == f"dispatch.{name[5:]}.v1"
            }
            if not own or acl_topics(user, "Read") != own:
                report.fail(
                    where, f"department user {name} reads {sorted(acl_topics(user, 'Read'))}, not its own"
                )
            if acl_topics(user, "Write") != {contract.DISPATCH_RESPONSES}:
                report.fail(where, f"department user {name} writes {sorted(acl_topics(user, 'Write'))}")
    deployments = by_kind(docs, "Deployment")
    budgets, scalers, policies = (
        by_kind(docs, k) for k in ("PodDisruptionBudget", "ScaledObject", "NetworkPolicy")
    )
    for name, deployment in deployments.items():
        for kind, have in (
            ("PodDisruptionBudget", budgets),
            ("ScaledObject", scalers),
            ("NetworkPolicy", policies),
        ):
            if name not in have:
                report.fail(where, f"{name} has no {kind}")
        if name not in users:
            report.fail(where, f"{name} has no KafkaUser")
        elif name in scalers:
            reads = acl_topics(users[name], "Read")
            # Past the most partitions of any topic it reads, a replica would have nothing to read.
            cap = max((topics[t]["spec"]["partitions"] for t in reads if t in topics), default=0)
            if scalers[name]["spec"]["maxReplicaCount"] != cap:
                most = scalers[name]["spec"]["maxReplicaCount"]
                report.fail(where, f"{name} scales to {most}, its topics have at most {cap} partitions")
        spec = deployment["spec"]["template"]["spec"]
        if not any(c.get("command", [])[-2:-1] == ["migrate"] for c in spec.get("initContainers", [])):
            report.fail(where, f"{name} has no migration init container")
    config = by_kind(docs, "ConfigMap").get("whistle-config", {}).get("data", {})
    wanted = {
        "ENVIRONMENT": "production",
        "HTTP_HOST": "0.0.0.0",
        "TOPIC_REPLICATION_FACTOR": "3",
        "MIGRATE_ON_START": "false",
    }
    for key, value in wanted.items():
        if config.get(key) != value:
            report.fail(where, f"ConfigMap {key} is {config.get(key)!r}, production needs {value!r}")
    for key in ("NOTIFY_SMS_URL", "NOTIFY_WEBHOOK_URL"):
        if not config.get(key):
            report.fail(where, f"ConfigMap has no {key}: notify would refuse to start")


# ---- Prometheus --------------------------------------------------------------------------------------


def promtool(deploy: Path, pool: ThreadPoolExecutor, report: Report) -> Callable[[], None]:
    """Starts every promtool run (one per test file, side by side); the result waits for them."""
    prometheus = deploy / "prometheus"
    runs = [["check", "rules", str(prometheus / "alerts.yml")]]
    runs += [["test", "rules", str(f)] for f in sorted((prometheus / "tests").glob("*.yml"))]
    command = tool("promtool")
    started = [
        (args, pool.submit(subprocess.run, [command, *args], capture_output=True, text=True)) for args in runs
    ]

    def wait() -> None:
        for args, future in started:
            done = future.result()
            if done.returncode != 0:
                report.fail("promtool " + " ".join(args), (done.stdout + done.stderr).strip()[-1500:])

    return wait


# ---- all of it -----------------------------------------------------------------------------------------


def check(deploy: Path, step: Callable[[str], None] = lambda _: None) -> Report:
    report = Report()
    k8s, schemas = deploy / "k8s", deploy / "schemas"
    with ThreadPoolExecutor(max_workers=8) as pool:
        # The external tools run side by side; each result is read in order.
        promtool_done = promtool(deploy, pool, report)
        directories = kustomizations(k8s)
        rendered = [pool.submit(kustomize, d, report) for d in directories]
        seen: set[str] = set()
        for directory, future in zip(directories, rendered, strict=True):
            docs = future.result()
            where = str(directory.relative_to(deploy.parent))
            for doc in docs:
                key = json.dumps(doc, sort_keys=True)  # an overlay repeats its bases: validate once
                if key not in seen:
                    seen.add(key)
                    validate(where, doc, schemas, report)
            if directory.parent.name == "overlays" and directory.name == "production":
                promises(where, docs, report)
        for where, doc in standalone(k8s):
            validate(where, doc, schemas, report)
        step(f"kustomized {len(directories)} kustomizations, validated {len(seen)} manifests")
        if deploy_render.main(["--check", "--out", str(k8s)]) != 0:
            report.fail("deploy-render", "generated files drifted from the code (see the diff above)")
        step("rendered deploy/k8s from the code and compared")
        promtool_done()
        step("promtool checked the rules and ran their unit tests")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy-check", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="a repository (or a copy) holding deploy/")
    args = parser.parse_args(argv)
    started = last = time.monotonic()

    def step(done: str) -> None:
        nonlocal last
        print(f"deploy-check: {done} ({time.monotonic() - last:.1f}s)", flush=True)
        last = time.monotonic()

    report = check(args.root / "deploy", step)
    took = time.monotonic() - started
    for problem in report.problems:
        print("  FAIL " + problem)
    if report.problems:
        print(f"deploy-check: {len(report.problems)} problem(s) in {took:.1f}s")
        return 1
    print(f"deploy-check: every manifest, rule and render is sound ({took:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
