"""The Databricks Asset Bundle (`databricks.yml`, `resources/*.yml`), checked without the
Databricks CLI: every key one that the CLI's bundle schema has, every variable declared,
each job's task the wheel's `revseg` entry point with parameters that are a `revseg run`
command line whose config loads, and the wheel taken from where the artifact builds it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from revseg.cli import build_parser
from revseg.config import load_config

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"\$\{([^}]+)\}")
JOBS = ("revseg_serverless", "revseg_cluster")
# References the CLI resolves itself; every other one must be a declared `${var.NAME}`.
BUILTIN_REFERENCES = {"workspace.file_path", "bundle.name", "bundle.target"}


def _keys(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The keys of each kind of mapping the bundle uses, as the Databricks CLI's bundle schema
# (bundle/schema/jsonschema.json in databricks/cli) has them: a misspelt key fails here
# rather than at deploy time. A kind of mapping the bundle starts using needs its keys here.
KNOWN_KEYS = {
    "root": _keys(
        "artifacts bundle environments experimental include permissions presets python "
        "resources run_as scripts sync targets variables workspace"
    ),
    "bundle": _keys("cluster_id compute_id databricks_cli_version deployment engine git name uuid"),
    "variable": _keys("default description lookup type"),
    "artifact": _keys("build dynamic_version executable files path type"),
    "target": _keys(
        "artifacts bundle cluster_id compute_id default git mode permissions presets resources "
        "run_as sync variables workspace"
    ),
    "workspace": _keys(
        "account_id artifact_path auth_type azure_client_id azure_environment "
        "azure_login_app_id azure_tenant_id azure_use_msi azure_workspace_resource_id client_id "
        "experimental_is_unified_host file_path google_service_account host profile "
        "resource_path root_path state_path workspace_id"
    ),
    "permission": _keys("group_name level service_principal_name user_name"),
    "resources": _keys("jobs"),  # the only kind of resource this test knows
    "job": _keys(
        "budget_policy_id continuous description email_notifications environments git_source "
        "health job_clusters lifecycle max_concurrent_runs name notification_settings "
        "parameters parent_path performance_target permissions queue run_as schedule tags "
        "tasks timeout_seconds trigger triggers usage_policy_id webhook_notifications"
    ),
    "schedule": _keys("pause_status quartz_cron_expression sql_condition timezone_id"),
    "task": _keys(
        "ai_runtime_task alert_task clean_rooms_notebook_task compute condition_task "
        "dashboard_task dbt_cloud_task dbt_platform_task dbt_task depends_on description "
        "disable_auto_optimization disabled email_notifications environment_key "
        "existing_cluster_id for_each_task gen_ai_compute_task health job_cluster_key libraries "
        "max_retries min_retry_interval_millis new_cluster notebook_task notification_settings "
        "pipeline_task power_bi_task python_operator_task python_wheel_task retry_on_timeout "
        "run_if run_job_task spark_jar_task spark_python_task spark_submit_task sql_task "
        "task_key timeout_seconds webhook_notifications"
    ),
    "python_wheel_task": _keys("entry_point named_parameters package_name parameters"),
    "library": _keys("cran egg jar maven pypi requirements whl"),
    "environment": _keys("environment_key spec"),
    "environment_spec": _keys(
        "base_environment client dependencies environment_version java_dependencies"
    ),
    "job_cluster": _keys("job_cluster_key new_cluster serverless_compute_id"),
    "cluster": _keys(
        "apply_policy_default_values autoscale autotermination_minutes aws_attributes "
        "azure_attributes cluster_log_conf cluster_name custom_tags data_security_mode "
        "dependency_mode docker_image driver_instance_pool_id driver_node_type_flexibility "
        "driver_node_type_id enable_elastic_disk enable_local_disk_encryption gcp_attributes "
        "init_scripts instance_pool_id is_single_node kind node_type_id num_workers policy_id "
        "remote_disk_throughput runtime_engine single_user_name spark_conf spark_env_vars "
        "spark_version ssh_public_keys total_initial_remote_disk_size use_ml_runtime "
        "worker_node_type_flexibility workload_type"
    ),
}
# Which kind each key's value is: one mapping, a mapping of named ones ("map:"), or a list.
CHILDREN = {
    "root": {
        "bundle": "bundle",
        "variables": "map:variable",
        "artifacts": "map:artifact",
        "targets": "map:target",
        "workspace": "workspace",
        "permissions": "list:permission",
        "resources": "resources",
    },
    "target": {
        "artifacts": "map:artifact",
        "workspace": "workspace",
        "permissions": "list:permission",
        "resources": "resources",
    },
    "resources": {"jobs": "map:job"},
    "job": {
        "schedule": "schedule",
        "tasks": "list:task",
        "environments": "list:environment",
        "job_clusters": "list:job_cluster",
        "permissions": "list:permission",
    },
    "environment": {"spec": "environment_spec"},
    "job_cluster": {"new_cluster": "cluster"},
    "task": {"python_wheel_task": "python_wheel_task", "libraries": "list:library"},
}


def documents() -> dict[Path, dict[str, Any]]:
    """databricks.yml and each file its `include` patterns name, as YAML."""
    main = REPO / "databricks.yml"
    found = {main: yaml.safe_load(main.read_text())}
    for pattern in found[main]["include"]:
        for path in sorted(REPO.glob(pattern)):
            found[path] = yaml.safe_load(path.read_text())
    return found


def bundle() -> dict[str, Any]:
    """databricks.yml with the resources of every included file merged in."""
    docs = documents()
    resources: dict[str, dict[str, Any]] = {}
    for doc in docs.values():
        for kind, items in (doc.get("resources") or {}).items():
            twice = set(resources.get(kind, {})) & set(items)
            assert not twice, f"resources.{kind} defined twice: {sorted(twice)}"
            resources.setdefault(kind, {}).update(items)
    return {**docs[REPO / "databricks.yml"], "resources": resources}


def job_file(job: str) -> Path:
    """The file that defines the job: relative paths in it are relative to that file."""
    (path,) = (
        p for p, doc in documents().items() if job in doc.get("resources", {}).get("jobs", {})
    )
    return path


def unknown_keys(node: Any, kind: str, where: str) -> Iterator[str]:
    if not isinstance(node, dict):
        yield f"{where}: a mapping expected, got {node!r}"
        return
    for key, value in node.items():
        if key not in KNOWN_KEYS[kind]:
            yield f"{where}.{key}"
            continue
        child = CHILDREN.get(kind, {}).get(key)
        if child is None:
            continue
        shape, _, child_kind = child.rpartition(":")
        if shape == "map":
            for name, item in (value or {}).items():
                yield from unknown_keys(item, child_kind, f"{where}.{key}.{name}")
        elif shape == "list":
            for i, item in enumerate(value or []):
                yield from unknown_keys(item, child_kind, f"{where}.{key}[{i}]")
        else:
            yield from unknown_keys(value, child_kind, f"{where}.{key}")


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


def console_scripts() -> dict[str, str]:
    """setup.py's console scripts, name to `module:function`, read from its text."""
    (listed,) = re.findall(r'"console_scripts":\s*\[([^\]]*)\]', (REPO / "setup.py").read_text())
    pairs = (item.split("=", 1) for item in re.findall(r'"([^"]+)"', listed))
    return {name.strip(): target.strip() for name, target in pairs}


def wheels_of(job: str, paths: list[str]) -> list[Path]:
    """Wheel paths of a job's task or environment, as the CLI resolves them: relative to
    the file that defines the job."""
    return [Path(os.path.normpath(job_file(job).parent / path)) for path in paths]


def test_every_key_is_one_the_bundle_schema_has() -> None:
    problems = [
        problem
        for path, doc in documents().items()
        for problem in unknown_keys(doc, "root", path.relative_to(REPO).as_posix())
    ]
    assert problems == []


def test_the_bundle_its_targets_and_the_wheel_artifact() -> None:
    found = bundle()
    assert found["bundle"]["name"] == "revseg"
    targets = found["targets"]
    assert [name for name, target in targets.items() if target.get("default")] == ["dev"]
    assert targets["dev"]["mode"] == "development"
    assert targets["prod"]["mode"] == "production"
    # Production mode wants one copy of the bundle: an explicit root path, per target.
    root_path = targets["prod"]["workspace"]["root_path"]
    assert root_path.startswith("/Workspace/") and "${bundle.target}" in root_path
    assert {t["mode"] for t in targets.values()} <= {"development", "production"}

    (artifact,) = found["artifacts"].values()
    assert artifact["type"] == "whl"
    assert artifact["path"] == "."
    # The artifact and scripts/build_dist.sh both build the wheel into dist/.
    assert "pip wheel --no-deps -w dist ." in artifact["build"]
    assert "pip wheel --quiet --no-deps -w dist ." in (REPO / "scripts/build_dist.sh").read_text()


def test_every_variable_has_a_description_and_a_default() -> None:
    variables = bundle()["variables"]
    assert set(variables) == {"catalog", "schema", "source_table", "node_type_id"}
    for name, spec in variables.items():
        assert spec.get("description"), name
        assert spec.get("default") not in (None, ""), name


def test_every_reference_is_declared_or_the_bundles_own() -> None:
    found = bundle()
    declared = {f"var.{name}" for name in found["variables"]}
    assert references(found) - declared - BUILTIN_REFERENCES == set()


@pytest.mark.parametrize("job", JOBS)
def test_each_job_runs_the_wheels_entry_point_on_a_config_that_loads(job: str) -> None:
    found = bundle()
    spec = found["resources"]["jobs"][job]
    assert spec["max_concurrent_runs"] == 1  # runs of one output schema take turns
    (task,) = spec["tasks"]
    assert task["task_key"] == "segment"
    # Exit code 75 (a concurrent write) is safe to retry; a timeout is not retried.
    assert task["max_retries"] == 2
    assert task["min_retry_interval_millis"] == 60000
    assert task["retry_on_timeout"] is False

    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "revseg"
    assert console_scripts()[wheel_task["entry_point"]] == "revseg.cli:entry_point"
    (installed,) = (
        e
        for e in entry_points(group="console_scripts", name=wheel_task["entry_point"])
        if e.dist is not None and e.dist.name == "revseg"
    )
    assert installed.value == "revseg.cli:entry_point" and callable(installed.load())

    variables = {name: str(v["default"]) for name, v in found["variables"].items()}
    argv = [substituted(arg, variables) for arg in wheel_task["parameters"]]
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    assert args.config == REPO / "conf" / "databricks.yaml"
    config = load_config(args.config, args.overrides)
    assert config.output.catalog == variables["catalog"]
    assert config.output.schema == variables["schema"]
    assert config.source.table == variables["source_table"]
    assert config.output.path is None and config.source.path is None
    assert "spark.master" not in config.spark  # Databricks owns the session


def test_both_jobs_run_the_same_wheel_task() -> None:
    jobs = bundle()["resources"]["jobs"]
    (serverless,) = jobs["revseg_serverless"]["tasks"]
    (cluster,) = jobs["revseg_cluster"]["tasks"]
    assert serverless["python_wheel_task"] == cluster["python_wheel_task"]


def test_the_serverless_job_installs_the_wheel_in_its_environment() -> None:
    spec = bundle()["resources"]["jobs"]["revseg_serverless"]
    (task,) = spec["tasks"]
    (environment,) = spec["environments"]
    assert task["environment_key"] == environment["environment_key"]
    assert "job_cluster_key" not in task and "libraries" not in task
    env = environment["spec"]
    assert "client" not in env  # the deprecated name of environment_version
    assert int(env["environment_version"]) >= 4  # docs/supported.md: 4 or later
    (wheel,) = wheels_of("revseg_serverless", env["dependencies"])
    assert wheel == REPO / "dist" / "*.whl"

    schedule = spec["schedule"]
    assert schedule["timezone_id"] == "UTC"
    assert schedule["pause_status"] == "PAUSED"
    assert len(schedule["quartz_cron_expression"].split()) in (6, 7)


def test_the_cluster_job_installs_the_wheel_on_a_spark_4_1_runtime() -> None:
    spec = bundle()["resources"]["jobs"]["revseg_cluster"]
    (task,) = spec["tasks"]
    (cluster,) = spec["job_clusters"]
    assert task["job_cluster_key"] == cluster["job_cluster_key"]
    new_cluster = cluster["new_cluster"]
    # Databricks Runtime 18 is the one on Spark 4.1 (docs/supported.md); 17.3 is Spark 4.0.
    assert int(new_cluster["spark_version"].split(".")[0]) >= 18
    assert new_cluster["spark_version"].endswith("-scala2.13")
    assert new_cluster["node_type_id"] == "${var.node_type_id}"
    assert "spark.master" not in (new_cluster.get("spark_conf") or {})
    (wheel,) = wheels_of("revseg_cluster", [library["whl"] for library in task["libraries"]])
    assert wheel == REPO / "dist" / "*.whl"
