"""Static checks of deploy/: Dockerfile, Terraform, ECS task definitions, CodeDeploy AppSpec.

No network, no terraform binary: HCL is checked for balanced brackets and the resources that
must exist; JSON and YAML are parsed for real.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TF = DEPLOY / "terraform"
TF_FILES = sorted(TF.rglob("*.tf"))
APP_SECRETS = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def strip_hcl(text: str) -> str:
    """Drop comments and string literals (with their ${...} interpolations) from HCL."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" or text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            assert end >= 0, "unterminated /* comment"
            i = end + 2
        elif c == '"':
            i, depth = i + 1, 0
            while i < n:
                if text[i] == "\\":
                    i += 2
                    continue
                if text.startswith("${", i):
                    depth, i = depth + 1, i + 2
                    continue
                if text[i] == "}" and depth:
                    depth -= 1
                elif text[i] == '"' and not depth:
                    break
                elif text[i] == "\n" and not depth:
                    raise AssertionError("unterminated string")
                i += 1
            assert i < n, "unterminated string"
            out.append('""')
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def resources(path: Path) -> set[str]:
    return {f"{t}.{n}" for t, n in re.findall(r'^resource\s+"(\w+)"\s+"(\w+)"', read(path), re.M)}


def module_resources(module: str) -> set[str]:
    found: set[str] = set()
    for f in (TF / "modules" / module).glob("*.tf"):
        found |= resources(f)
    return found


def load_render():
    spec = importlib.util.spec_from_file_location("render_taskdef", DEPLOY / "render_taskdef.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_template(kind: str) -> dict:
    return json.loads(read(DEPLOY / "ecs" / f"{kind}.json"))


# ------------------------------------------------------------------ Terraform


def test_terraform_tree_is_present():
    assert len(TF_FILES) >= 15, "deploy/terraform looks incomplete"
    for part in ("modules/network", "modules/service", "modules/data", "environments/dev", "environments/prod"):
        assert list((TF / part).glob("*.tf")), f"{part} has no .tf files"


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_tf_file_is_balanced(path: Path):
    code = strip_hcl(read(path))
    stack = []
    pairs = {"}": "{", "]": "[", ")": "("}
    for ch in code:
        if ch in "{[(":
            stack.append(ch)
        elif ch in pairs:
            assert stack and stack[-1] == pairs[ch], f"unbalanced {ch!r} in {path.name}"
            stack.pop()
    assert not stack, f"unclosed {stack} in {path.name}"


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
    assert "CODE_DEPLOY" not in strip_hcl(dev) and "aws_codedeploy" not in dev


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


def test_web_listens_on_8000_with_health_check():
    web = task_template("web")["containerDefinitions"][0]  # the app; the metrics agent follows
    assert web["name"] == "web"
    assert web["portMappings"][0]["containerPort"] == 8000
    assert "/health" in " ".join(web["healthCheck"]["command"])


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
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M) or all("python:3.11-slim" in f for f in froms)
    assert "uv sync --frozen --no-dev" in text
    assert re.search(r"^COPY pyproject\.toml uv\.lock", text, re.M)
    for path in ("src/", "templates/", "static/", "migrations/", "workers/", "alembic.ini"):
        assert re.search(rf"^COPY .*{re.escape(path)}", text, re.M), path
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthcheck = re.search(r"^HEALTHCHECK.*?(?<!\\)\n", text, re.M | re.S).group(0)
    assert "python" in healthcheck and "/health" in healthcheck and "curl" not in healthcheck


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


def test_dockerignore_example_keeps_secrets_out():
    lines = read(DEPLOY / "dockerignore.example").splitlines()
    for entry in (".git", ".venv", ".env", "*.tfstate*"):
        assert entry in lines, entry


# ------------------------------------------------------------------- AppSpec


def test_appspec_is_ecs_blue_green():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load(read(DEPLOY / "codedeploy" / "appspec.yaml"))
    assert str(spec["version"]) in {"0.0", "0"}
    target = spec["Resources"][0]["TargetService"]
    assert target["Type"] == "AWS::ECS::Service"
    props = target["Properties"]
    assert props["TaskDefinition"] == "<TASK_DEFINITION>"
    assert props["LoadBalancerInfo"] == {"ContainerName": "web", "ContainerPort": 8000}
