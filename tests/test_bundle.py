"""The Databricks Asset Bundle (`databricks.yml`, `resources/*.yml`): what the Databricks CLI
would need to deploy it, checked without the CLI: the keys the jobs must have, every
variable declared, and a task's parameters are a `revseg` command line whose config loads,
through the entry point the wheel declares."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from revseg.cli import build_parser
from revseg.config import load_config

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"\$\{([^}]+)\}")


def bundle() -> dict[str, Any]:
    root = yaml.safe_load((REPO / "databricks.yml").read_text())
    resources: dict[str, Any] = {}
    for pattern in root["include"]:
        for path in sorted(REPO.glob(pattern)):
            for kind, items in yaml.safe_load(path.read_text())["resources"].items():
                resources.setdefault(kind, {}).update(items)
    return {**root, "resources": resources}


def references(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(references(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(references(v) for v in node), set())
    return set(REFERENCE.findall(node)) if isinstance(node, str) else set()


def substituted(text: str, variables: dict[str, str]) -> str:
    """`${var.X}` by the variable's default, `${workspace.file_path}` by the repository
    (the bundle's files are deployed there)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "workspace.file_path":
            return str(REPO)
        return variables[name.removeprefix("var.")]

    return REFERENCE.sub(value, text)


def test_the_bundle_declares_its_targets_and_the_wheel() -> None:
    found = bundle()
    assert found["bundle"]["name"] == "revseg"
    assert found["targets"]["dev"] == {"mode": "development", "default": True}
    assert found["targets"]["prod"]["mode"] == "production"
    (artifact,) = found["artifacts"].values()
    assert artifact["type"] == "whl" and "wheel" in artifact["build"]
    assert set(found["variables"]) >= {"catalog", "schema"}


def test_every_reference_is_declared_or_the_bundles_own() -> None:
    found = bundle()
    builtin = {"workspace.file_path", "bundle.name", "bundle.target"}
    declared = {f"var.{name}" for name in found["variables"]}
    assert references(found) - declared - builtin == set()


@pytest.mark.parametrize("job", ["revseg_serverless", "revseg_cluster"])
def test_each_job_runs_the_wheels_entry_point_on_a_config_that_loads(job: str) -> None:
    found = bundle()
    spec = found["resources"]["jobs"][job]
    assert spec["max_concurrent_runs"] == 1  # runs of one output schema take turns
    (task,) = spec["tasks"]
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "revseg"
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts[wheel_task["entry_point"]] == "revseg.cli:entry_point"

    variables = {name: str(v["default"]) for name, v in found["variables"].items()}
    argv = [substituted(arg, variables) for arg in wheel_task["parameters"]]
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    config = load_config(args.config, args.overrides)
    assert config.output.catalog == variables["catalog"]
    assert config.output.schema == variables["schema"]
    assert config.source.table == variables["source_table"]
    assert config.output.path is None and config.source.path is None

    if job == "revseg_serverless":
        (environment,) = spec["environments"]
        assert task["environment_key"] == environment["environment_key"]
        wheels = environment["spec"]["dependencies"]
    else:
        (cluster,) = spec["job_clusters"]
        assert task["job_cluster_key"] == cluster["job_cluster_key"]
        assert cluster["new_cluster"]["spark_version"].split(".")[0] >= "17"  # Spark 4
        wheels = [library["whl"] for library in task["libraries"]]
    # Relative to resources/: the wheel the artifact builds into dist/.
    assert wheels == ["../dist/*.whl"]
    assert "-w dist" in found["artifacts"]["revseg_wheel"]["build"]
