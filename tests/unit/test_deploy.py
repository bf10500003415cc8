"""Static checks of deploy/: Dockerfile, Terraform, ECS task definitions, CodeDeploy AppSpec,
the workflows and compose.yaml.

No network, no terraform binary, no Docker engine: HCL is read with python-hcl2 and every reference
checked by scripts/check_terraform.py (make lint runs it, with hadolint, actionlint and checkov);
JSON and YAML are parsed for real.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TF = DEPLOY / "terraform"
TF_FILES = sorted(TF.rglob("*.tf"))
WORKFLOWS = REPO / ".github" / "workflows"
APP_SECRETS = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_lines(text: str) -> str:
    """HCL without its # comments (enough for the regex checks below)."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def load_script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def terraform_checker():
    return load_script("check_terraform", REPO / "scripts" / "check_terraform.py")


def resources(path: Path) -> set[str]:
    return {f"{t}.{n}" for t, n in re.findall(r'^resource\s+"(\w+)"\s+"(\w+)"', read(path), re.M)}


def module_resources(module: str) -> set[str]:
    found: set[str] = set()
    for f in (TF / "modules" / module).glob("*.tf"):
        found |= resources(f)
    return found


def load_render():
    return load_script("render_taskdef", DEPLOY / "render_taskdef.py")


def task_template(kind: str) -> dict:
    return json.loads(read(DEPLOY / "ecs" / f"{kind}.json"))


# ------------------------------------------------------------------ Terraform


def test_terraform_tree_is_present():
    assert len(TF_FILES) >= 15, "deploy/terraform looks incomplete"
    for part in ("modules/network", "modules/service", "modules/data", "environments/dev", "environments/prod"):
        assert list((TF / part).glob("*.tf")), f"{part} has no .tf files"


@pytest.mark.parametrize(
    ("module", "required"),
    [
        (
            "network",
            {
                "aws_vpc.this",
                "aws_subnet.public",
                "aws_subnet.private",
                "aws_nat_gateway.this",
                "aws_internet_gateway.this",
                "aws_route_table.private",
            },
        ),
        (
            "service",
            {
                "aws_ecr_repository.app",
                "aws_ecs_cluster.this",
                "aws_ecs_task_definition.app",
                "aws_ecs_service.web",
                "aws_ecs_service.worker",
                "aws_lb.web",
                "aws_lb_listener.https",
                "aws_lb_target_group.web",
                "aws_cloudwatch_log_group.app",
                "aws_iam_role.execution",
                "aws_iam_role.task",
                "aws_security_group.alb",
                "aws_security_group.tasks",
            },
        ),
        (
            "data",
            {
                "aws_db_instance.this",
                "aws_elasticache_replication_group.this",
                "aws_s3_bucket.exports",
                "aws_s3_bucket_versioning.exports",
                "aws_s3_bucket_public_access_block.exports",
                "aws_s3_bucket_server_side_encryption_configuration.exports",
                "aws_s3_bucket_lifecycle_configuration.exports",
                "aws_secretsmanager_secret.app",
            },
        ),
    ],
)
def test_module_declares_required_resources(module: str, required: set[str]):
    missing = required - module_resources(module)
    assert not missing, f"modules/{module} lacks {sorted(missing)}"


def test_module_sources_resolve():
    for env in ("dev", "prod"):
        sources = re.findall(r'source\s*=\s*"([^"]+)"', read(TF / "environments" / env / "main.tf"))
        assert sources, env
        for src in sources:
            assert (TF / "environments" / env / src).resolve().is_dir(), f"{env}: {src} missing"


def test_data_stores_are_encrypted():
    data = read(TF / "modules/data/main.tf")
    assert re.search(r'engine\s*=\s*"postgres"', data) and re.search(r'engine_version\s*=\s*"16', data)
    for setting in (
        "storage_encrypted",
        "transit_encryption_enabled",
        "at_rest_encryption_enabled",
        "block_public_acls",
        "restrict_public_buckets",
    ):
        assert re.search(rf"{setting}\s*=\s*true", data), setting
    assert re.search(r"multi_az\s*=\s*var\.multi_az", data)
    assert re.search(r'status\s*=\s*"Enabled"', data)  # versioning + lifecycle


def test_web_service_deployment_is_configurable():
    service = read(TF / "modules/service/main.tf")
    assert re.search(r"deployment_controller\s*\{\s*type\s*=\s*var\.deployment_controller", service)
    assert 'dynamic "deployment_circuit_breaker"' in service
    assert re.search(r"rollback\s*=\s*true", service)


def test_dev_deploys_rolling_with_ecs():
    dev = read(TF / "environments/dev/main.tf")
    assert re.search(r'deployment_controller\s*=\s*"ECS"', dev)
    assert re.search(r"deployment_minimum_healthy_percent\s*=\s*50\b", dev)
    assert re.search(r"deployment_maximum_percent\s*=\s*200\b", dev)
    assert "CODE_DEPLOY" not in code_lines(dev) and "aws_codedeploy" not in dev


def test_prod_deploys_blue_green_with_codedeploy():
    prod = "".join(read(f) for f in (TF / "environments/prod").glob("*.tf"))
    assert re.search(r'deployment_controller\s*=\s*"CODE_DEPLOY"', prod)
    assert 'resource "aws_codedeploy_app"' in prod
    assert 'resource "aws_codedeploy_deployment_group"' in prod
    assert re.search(r'compute_platform\s*=\s*"ECS"', prod)
    assert re.search(r'deployment_type\s*=\s*"BLUE_GREEN"', prod)
    assert re.search(r"auto_rollback_configuration\s*\{\s*enabled\s*=\s*true", prod)
    assert 'target_group_names["blue"]' in prod and 'target_group_names["green"]' in prod


def test_task_definition_placeholders_match_terraform_values():
    """Every ${NAME} in deploy/ecs/*.json gets a value from the service module (or IMAGE)."""
    service = read(TF / "modules/service/main.tf")
    block = service[service.index("template_vars = {") : service.index("image = ")]
    provided = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=", block, re.M)) | {"IMAGE"}
    for kind in ("web", "worker"):
        used = set(PLACEHOLDER.findall(read(DEPLOY / "ecs" / f"{kind}.json")))
        assert used <= provided, f"{kind}.json needs {sorted(used - provided)}"


def test_checkov_skips_give_reasons():
    for path in TF_FILES:
        for skip in re.findall(r"#\s*checkov:skip=(.*)", read(path)):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV2?_AWS_\d+", check), skip
            assert len(reason.strip()) > 10, f"{path.name}: {check} skipped without a reason"


# -------------------------------------------------------- ECS task definitions


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_task_definition_takes_secrets_from_secrets_manager(kind: str):
    td = task_template(kind)
    assert td["requiresCompatibilities"] == ["FARGATE"] and td["networkMode"] == "awsvpc"
    container = td["containerDefinitions"][0]  # the app; the metrics agent follows
    env = {e["name"]: e["value"] for e in container["environment"]}
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert set(secrets) == APP_SECRETS
    assert not APP_SECRETS & set(env), "secrets must not be plain environment variables"
    assert all(v.startswith("${") for v in secrets.values())
    assert env["SWEETDREAM_ENV"] == "production"
    assert container["logConfiguration"]["logDriver"] == "awslogs"


def test_worker_gets_time_to_finish_its_job():
    worker = task_template("worker")["containerDefinitions"][0]  # the app; the metrics agent follows
    assert worker["stopTimeout"] == 120
    assert worker["command"] == ["sweetdream", "worker"]
    assert "portMappings" not in worker


def test_web_listens_on_8000_with_a_patient_readiness_check():
    web = task_template("web")["containerDefinitions"][0]  # the app; the metrics agent follows
    assert web["name"] == "web"
    assert web["portMappings"][0]["containerPort"] == 8000
    check = web["healthCheck"]
    assert "http://127.0.0.1:8000/ready" in " ".join(check["command"])
    # Replaced only after ~2.5 minutes cut off from PostgreSQL/Redis: longer than a Multi-AZ failover.
    assert check["interval"] * check["retries"] >= 150


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_render_taskdef_fills_every_placeholder(kind: str):
    render = load_render()
    names = set(PLACEHOLDER.findall(read(DEPLOY / "ecs" / f"{kind}.json"))) - {"IMAGE"}
    values = dict.fromkeys(names, "x") | {"CPU": "256", "MEMORY": "512"}
    variables = {"common": values, "web": {}, "worker": {}}
    td = render.render(kind, variables, "123.dkr.ecr.example/sweetdream:abc123")
    assert "${" not in json.dumps(td)
    assert td["containerDefinitions"][0]["image"].endswith(":abc123")


def test_web_trusts_exactly_the_load_balancers_hop():
    """Behind the ALB every request comes from the ALB's address: without TRUST_PROXY_HOPS the
    rate limits would be one bucket for the whole shop. The ALB appends the address it saw to
    X-Forwarded-For (never replaces it), so one hop is believed and nothing a client sends."""
    web = task_template("web")["containerDefinitions"][0]  # the app; the metrics agent follows
    env = {e["name"]: e["value"] for e in web["environment"]}
    assert "TRUST_PROXY_HOPS" in env, "the web task definition must say how many proxies to trust"
    assert "TRUST_PROXY" not in env, "one setting, TRUST_PROXY_HOPS, says it"
    service = read(TF / "modules/service/main.tf")
    web_vars = service[service.index("    web = {") : service.index("    worker = {")]
    placeholder = PLACEHOLDER.fullmatch(env["TRUST_PROXY_HOPS"])
    value = (
        re.search(rf'{placeholder.group(1)}\s*=\s*"(\d+)"', web_vars).group(1)
        if placeholder
        else env["TRUST_PROXY_HOPS"]
    )
    assert value == "1"
    alb = service[service.index('resource "aws_lb" "web"') :]
    alb = alb[: alb.index("\n}")]
    assert re.search(r'xff_header_processing_mode\s*=\s*"append"', alb)


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multistage_uv_and_non_root():
    text = read(DEPLOY / "Dockerfile")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "expected a build and a runtime stage"
    assert "uv sync --frozen --no-dev" in text
    assert re.search(r"^COPY pyproject\.toml uv\.lock", text, re.M)
    for path in ("src/", "templates/", "static/", "migrations/", "workers/", "alembic.ini"):
        assert re.search(rf"^COPY .*{re.escape(path)}", text, re.M), path
    healthcheck = re.search(r"^HEALTHCHECK.*?(?<!\\)\n.*?\n", text, re.M | re.S).group(0)
    assert "python" in healthcheck and "/health" in healthcheck and "curl" not in healthcheck


def test_dockerfile_runs_as_a_numeric_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", read(DEPLOY / "Dockerfile"), re.M)
    assert users == ["10001:10001"]


def test_base_image_is_pinned_by_digest():
    text = read(DEPLOY / "Dockerfile")
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    assert re.findall(r"^FROM\s+(\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_workers_are_in_place_before_the_project_is_installed():
    """The project ships two packages (src/sweetdream and workers): the editable install must see
    both, or `sweetdream worker` imports only when started from /app."""
    build = read(DEPLOY / "Dockerfile").split("AS runtime")[0]
    install = build.index("uv sync --frozen --no-dev\n")
    assert build.index("COPY workers/ workers/") < install
    assert build.index("COPY src/ src/") < install
    assert '"workers"' in read(REPO / "pyproject.toml")


def test_image_leaves_writable_only_the_mounted_volumes():
    text = read(DEPLOY / "Dockerfile")
    assert json.loads(re.search(r"^VOLUME (\[.*\])$", text, re.M).group(1)) == ["/app/var", "/tmp"]
    assert "chown 10001:10001 /app/var" in text


def test_dockerfile_cmd_is_the_procfile_web_command():
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])$", read(DEPLOY / "Dockerfile"), re.M).group(1))
    shell = cmd[-1]
    assert "granian --interface asgi --factory sweetdream.app:create_app" in shell
    procfile = REPO / "Procfile"
    if procfile.exists():
        procs = dict(line.split(":", 1) for line in read(procfile).splitlines() if ":" in line)
        assert shell.removeprefix("exec ").strip() == procs["web"].strip()
        worker = task_template("worker")["containerDefinitions"][0]  # the app; the metrics agent follows
        assert worker["command"] == shlex.split(procs["worker"])


def test_dockerignore_at_the_root_keeps_secrets_and_state_out():
    assert not (DEPLOY / "dockerignore.example").exists()
    lines = read(REPO / ".dockerignore").splitlines()
    for entry in (".git", ".venv", ".env", "*.tfstate*", "var/", "tests/", "deploy/terraform/"):
        assert entry in lines, entry


# ------------------------------------------------------------------- AppSpec


def test_appspec_is_ecs_blue_green_with_the_hook():
    spec = yaml.safe_load(read(DEPLOY / "codedeploy" / "appspec.yaml"))
    assert str(spec["version"]) in {"0.0", "0"}
    target = spec["Resources"][0]["TargetService"]
    assert target["Type"] == "AWS::ECS::Service"
    props = target["Properties"]
    assert props["TaskDefinition"] == "<TASK_DEFINITION>"
    assert props["LoadBalancerInfo"] == {"ContainerName": "web", "ContainerPort": 8000}
    assert spec["Hooks"] == [{"AfterAllowTestTraffic": "<HOOK_FUNCTION>"}]
    release = read(DEPLOY / "release.sh")
    assert "s|<TASK_DEFINITION>|" in release and "s|<HOOK_FUNCTION>|" in release


# ------------------------------------------------- Terraform cross-references


def test_every_terraform_reference_resolves_in_both_environments():
    assert terraform_checker().check(TF) == []


@pytest.fixture
def tf_copy(tmp_path: Path) -> Path:
    root = tmp_path / "terraform"
    shutil.copytree(TF, root, ignore=shutil.ignore_patterns(".terraform", ".build", "*.tfstate*"))
    return root


def broken_problems(root: Path, relative: str, old: str, new: str) -> list[str]:
    path = root / relative
    text = read(path)
    assert old in text, f"{relative} no longer holds {old!r}: pick another line to break"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    checker = terraform_checker()
    return checker.problems_in(checker.load(path.parent.resolve()), root.resolve())


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        (
            "environments/prod/main.tf",
            "certificate_arn    = var.certificate_arn",
            "certificate_arn    = var.certificate_arm",
            "environments/prod/main.tf: var.certificate_arm is not a declared variable",
        ),
        (
            "environments/dev/ci.tf",
            "module.service.ecr_repository_arn",
            "module.service.ecr_repository_ram",
            "environments/dev/ci.tf: module.service has no output 'ecr_repository_ram'",
        ),
        (
            "environments/prod/main.tf",
            "  image_tag          = var.image_tag\n",
            "",
            "environments/prod: module 'service' does not pass required 'image_tag'",
        ),
        (
            "modules/service/release.tf",
            'aws_lb_target_group.web["green"].arn',
            'aws_lb_target_group.webb["green"].arn',
            "modules/service/release.tf: aws_lb_target_group.webb is not a resource declared here",
        ),
        (
            "modules/service/main.tf",
            "AWS_REGION         = local.region",
            "AWS_REGION         = local.regoin",
            "modules/service/main.tf: local.regoin is not a declared local",
        ),
        (
            "modules/ci/main.tf",
            "data.aws_iam_policy_document.trust.json",
            "data.aws_iam_policy_document.trusts.json",
            "modules/ci/main.tf: data.aws_iam_policy_document.trusts is not declared here",
        ),
    ],
    ids=["variable", "module-output", "module-input", "resource", "local", "data"],
)
def test_a_broken_reference_is_caught(tf_copy: Path, relative: str, old: str, new: str, expected: str):
    assert expected in broken_problems(tf_copy, relative, old, new)


# ------------------------------------------------ production settings present


def settings_read_from_env() -> set[str]:
    """Every variable name Settings.from_env reads (through _env/_int/_float/_bool), found in the source."""
    tree = ast.parse(read(REPO / "src" / "sweetdream" / "settings.py"))
    readers = {"_env", "_int", "_float", "_bool"}
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in readers
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


# What production may leave to the default, and why. A new setting fails the test below until it is
# in both task definitions or listed here with a reason.
MAY_STAY_DEFAULT = {
    "S3_ENDPOINT_URL": "another S3 endpoint: tests and compose.yaml only",
    "MEDIA_URL": "the bucket's own address by default; set it when a CDN serves the media/ prefix",
    "SMTP_URL": "only with MAIL_BACKEND=smtp; production sends through SES",
    "SES_ENDPOINT_URL": "another SES endpoint: tests only",
    "TRUST_PROXY": "the older name of TRUST_PROXY_HOPS",
    "JOB_RETRY_DELAY_SECONDS": "the default is the production value",
    "JOB_TIMEOUT_SECONDS": "the default is the production value",
    "EXPORT_EVENTS_PER_PART": "the default is the production value (tests set fewer)",
    "EXPORT_TIMEOUT_SECONDS": "the default is the production value",
    "EXPORT_RETRY_DELAY_SECONDS": "the default is the production value",
}
ONLY_FOR = {
    "TRUST_PROXY_HOPS": "web",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "worker",
    "WORKER_DB_POOL_SIZE": "worker",
    "WORKER_METRICS_PORT": "worker",
}


def image_env() -> set[str]:
    runtime = read(DEPLOY / "Dockerfile").split("AS runtime")[1]
    env_block = re.search(r"^ENV (.*?)(?<!\\)\n", runtime, re.M | re.S).group(1)
    return set(re.findall(r"(\w+)=", env_block))


def rendered(kind: str) -> dict:
    service = read(TF / "modules/service/main.tf")
    block = service[service.index("template_vars = {") : service.index("image = ")]
    values = dict.fromkeys(re.findall(r"^\s*([A-Z][A-Z0-9_]*)\s*=", block, re.M), "set-by-terraform")
    return load_render().render(kind, {"common": values, "web": {}, "worker": {}}, "repo/sweetdream@sha256:" + "0" * 64)


def test_settings_are_read_where_this_test_looks():
    read_names = settings_read_from_env()
    assert {"SECRET_KEY", "DATABASE_URL", "PUBLIC_URL", "S3_BUCKET", "MAIL_FROM", "TRUST_PROXY_HOPS"} <= read_names


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_task_definition_sets_every_setting_production_reads(kind: str):
    container = rendered(kind)["containerDefinitions"][0]  # the app; the metrics agent follows
    env = {e["name"]: e["value"] for e in container["environment"]}
    given = set(env) | {s["name"] for s in container["secrets"]} | image_env()
    needed = {name for name in settings_read_from_env() - set(MAY_STAY_DEFAULT) if ONLY_FOR.get(name, kind) == kind}
    assert sorted(needed - given) == []
    assert all(value for value in env.values()), "an empty value would silently fall back to the default"
    assert env["SWEETDREAM_ENV"] == "production"


def test_every_setting_is_in_the_readme_configuration_table():
    readme = read(REPO / "README.md")
    table = readme[readme.index("## Configuration") : readme.index("## CLI")]
    assert sorted(name for name in settings_read_from_env() if not re.search(rf"`{name}[`=]", table)) == []


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_root_filesystem_is_read_only_with_writable_volumes(kind: str):
    td = rendered(kind)
    container = td["containerDefinitions"][0]  # the app; the metrics agent follows
    assert container["readonlyRootFilesystem"] is True
    mounts = {m["containerPath"]: m["sourceVolume"] for m in container["mountPoints"]}
    assert mounts == {"/tmp": "tmp", "/app/var": "var"}
    assert {v["name"] for v in td["volumes"]} == {"tmp", "var"}
    service = read(TF / "modules/service/main.tf")
    assert 'dynamic "volume"' in service, "Terraform must register the volumes too"


# --------------------------------------------------- health checks, blue/green


def test_load_balancer_checks_the_process_not_its_dependencies():
    service = read(TF / "modules/service/main.tf")
    health = re.search(r"health_check\s*\{(.*?)\n  \}", service, re.S).group(1)
    assert re.search(r'path\s*=\s*"/health"', health)


def test_prod_has_a_test_listener_and_a_hook_codedeploy_can_call():
    release = read(TF / "modules/service/release.tf")
    assert re.search(r'resource "aws_lb_listener" "test"', release)
    assert 'target_group_arn = aws_lb_target_group.web["green"].arn' in release
    codedeploy = read(TF / "environments/prod/codedeploy.tf")
    assert re.search(
        r"test_traffic_route\s*\{\s*listener_arns\s*=\s*\[module\.service\.test_listener_arn\]", codedeploy
    )
    hook = read(TF / "environments/prod/hook.tf")
    # AWSCodeDeployRoleForECS may only invoke functions named CodeDeployHook_*.
    assert 'hook_name = "CodeDeployHook_' in hook
    assert 'source_file = "${path.module}/../../../hooks/smoke.py"' in hook
    assert (DEPLOY / "hooks" / "smoke.py").is_file()
    assert 'handler                        = "smoke.handler"' in hook
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in hook
    assert "vpc_config" in hook


# ------------------------------------------------------------- deploy role


def test_deploy_role_trusts_one_environment_of_one_repository():
    ci = read(TF / "modules/ci/main.tf")
    assert 'variable = "${local.github_host}:sub"' in ci
    assert 'values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]' in ci
    assert '"${local.github_host}:aud"' in ci
    assert re.search(r'github_environment\s*=\s*"dev"', read(TF / "environments/dev/ci.tf"))
    assert re.search(r'github_environment\s*=\s*"production"', read(TF / "environments/prod/ci.tf"))


def test_deploy_role_passes_only_the_task_roles():
    ci = read(TF / "modules/ci/main.tf")
    pass_role = ci[ci.index('sid       = "PassOnlyTheTaskRoles"') :]
    pass_role = pass_role[: pass_role.index("  statement {")]
    assert "resources = var.pass_role_arns" in pass_role
    assert '"ecs-tasks.amazonaws.com"' in pass_role
    assert "iam:*" not in ci and '"*:*"' not in ci
    wildcards = re.findall(r'resources\s*=\s*\["\*"\]', ci)
    assert len(wildcards) == 2, "only GetAuthorizationToken and RegisterTaskDefinition lack resource-level permissions"


# ---------------------------------------------------------------- workflows


def workflow(name: str) -> dict:
    return yaml.safe_load(read(WORKFLOWS / name))


def test_pull_requests_run_tests_lint_and_terraform_checks():
    check = workflow("check.yml")
    assert "pull_request" in check[True]  # YAML 1.1 reads the key `on` as True
    steps = [s.get("run", "") for job in check["jobs"].values() for s in job["steps"]]
    assert "make test" in steps  # make test runs make lint: ruff, mypy, hadolint, actionlint, checkov
    assert "terraform fmt -check -recursive deploy/terraform" in steps
    assert any("terraform init -backend=false" in s and "terraform validate" in s for s in steps)
    assert check["jobs"]["terraform"]["strategy"]["matrix"]["environment"] == ["dev", "prod"]
    uses = [s.get("uses", "") for job in check["jobs"].values() for s in job["steps"]]
    assert any(u.startswith("hashicorp/setup-terraform@") for u in uses)
    assert any(u.startswith("hadolint/hadolint-action@") for u in uses)


def test_main_builds_once_migrates_then_deploys_dev_then_approved_prod():
    release = workflow("release.yml")
    assert release[True]["push"]["branches"] == ["main"]
    jobs = release["jobs"]
    assert jobs["build"]["needs"] == "check" and jobs["dev"]["needs"] == "build"
    assert jobs["prod"]["needs"] == ["build", "dev"]
    assert jobs["dev"]["environment"] == "dev" and jobs["prod"]["environment"] == "production"
    for name in ("dev", "prod"):
        runs = [s.get("run", "") for s in jobs[name]["steps"]]
        order = [next(i for i, r in enumerate(runs) if step in r) for step in ("push", "register", "migrate")]
        assert order == sorted(order), f"{name}: push, register, migrate, then deploy"
        deploy = "roll web worker" if name == "dev" else "bluegreen"
        assert max(order) < next(i for i, r in enumerate(runs) if deploy in r)
    prod_runs = [s.get("run", "") for s in jobs["prod"]["steps"]]
    assert prod_runs.index("deploy/release.sh roll worker") > prod_runs.index("deploy/release.sh bluegreen")


def test_aws_access_is_by_oidc_without_stored_keys():
    text = read(WORKFLOWS / "release.yml")
    assert "AWS_ACCESS_KEY_ID" not in text and "aws-secret-access-key" not in text and "secrets." not in text
    jobs = workflow("release.yml")["jobs"]
    for name in ("dev", "prod"):
        assert jobs[name]["permissions"]["id-token"] == "write"
        (creds,) = [
            s for s in jobs[name]["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        assert creds["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert workflow("release.yml")["permissions"] == {"contents": "read"}


def test_migration_gates_on_its_exit_code():
    script = read(DEPLOY / "release.sh")
    migrate = script[script.index("migrate() {") : script.index("roll() {")]
    assert '"command":["sweetdream","database","upgrade","--no-prompt"]' in migrate
    assert "aws ecs wait tasks-stopped" in migrate
    assert 'if [ "$code" != "0" ]; then' in migrate and "exit 1" in migrate


# ------------------------------------------------------------------ compose


def compose() -> dict:
    return yaml.safe_load(read(REPO / "compose.yaml"))


def test_compose_runs_the_production_image_with_its_dependencies():
    services = compose()["services"]
    assert {"web", "worker", "migrate", "postgres", "redis", "s3"} <= set(services)
    for name in ("web", "worker", "migrate"):
        assert services[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert services[name]["read_only"] is True and services[name]["tmpfs"] == ["/tmp"]
        env = services[name]["environment"]
        needed = {n for n in settings_read_from_env() - set(MAY_STAY_DEFAULT) if ONLY_FOR.get(n, name) == name}
        assert sorted(needed - set(env) - image_env()) == [], name
        assert env["S3_ENDPOINT_URL"] == "http://s3:5000"
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["worker"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_commands_are_the_procfile_commands():
    services = compose()["services"]
    procs = dict(line.split(":", 1) for line in read(REPO / "Procfile").splitlines() if ":" in line)
    assert "command" not in services["web"]  # the image's CMD, which is Procfile web (tested above)
    assert services["worker"]["command"] == shlex.split(procs["worker"])
    assert services["migrate"]["command"] == shlex.split(procs["release"])


def test_the_images_commands_exist():
    """`sweetdream worker` and `sweetdream database upgrade --no-prompt`, as compose, the task
    definitions and the release step run them: click rejects an unknown command or option."""
    env = {
        **os.environ,
        "SWEETDREAM_ENV": "production",
        "SECRET_KEY": "k" * 40,
        "DATABASE_URL": "postgresql://u:p@127.0.0.1:9/db",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    cli = Path(sys.executable).parent / "sweetdream"
    for command in (["worker"], ["database", "upgrade", "--no-prompt"]):
        done = subprocess.run([cli, *command, "--help"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr[-500:])
