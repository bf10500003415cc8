"""Offline checks of the operations side of deploy/ (issue #12): the metrics sidecar in both task
definitions, the alarms and dashboard, autoscaling and the connection budget, retention, WAF,
ECS Exec and the S3 endpoint. Terraform is parsed with python-hcl2; no provider, no AWS."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from prometheus_client import REGISTRY

import sweetdream.platform.metrics
import workers.metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TF = DEPLOY / "terraform"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed(directory: str) -> dict[str, Any]:
    """Every block of the .tf files in one directory: resources/data by type and name, modules,
    variables, locals (merged), outputs."""
    out: dict[str, Any] = {"resource": {}, "data": {}, "module": {}, "variable": {}, "locals": {}, "output": {}}
    for path in sorted((TF / directory).glob("*.tf")):
        with path.open() as f:
            doc = hcl2.load(f)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        out[kind].setdefault(unquote(rtype), {})[unquote(name)] = body
        for kind in ("module", "variable", "output"):
            for block in doc.get(kind, []):
                for name, body in block.items():
                    out[kind][unquote(name)] = body
        for block in doc.get("locals", []):
            out["locals"].update(block)
    return out


def resource(directory: str, rtype: str, name: str) -> dict[str, Any]:
    return parsed(directory)["resource"][rtype][name]


def module_args(env: str, name: str) -> dict[str, Any]:
    return {k: unquote(v) for k, v in parsed(f"environments/{env}")["module"][name].items()}


def task_definition(kind: str) -> dict[str, Any]:
    return json.loads((DEPLOY / "ecs" / f"{kind}.json").read_text())


# --------------------------------------------------------------- task definitions


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_each_task_runs_a_cloudwatch_agent_sidecar_configured_from_ssm(kind: str) -> None:
    containers = {c["name"]: c for c in task_definition(kind)["containerDefinitions"]}
    assert set(containers) == {kind, "cloudwatch-agent"}
    agent = containers["cloudwatch-agent"]
    assert agent["essential"] is False  # the shop keeps serving if the agent stops
    assert agent["image"] == "${CW_AGENT_IMAGE}"
    assert {s["name"]: s["valueFrom"] for s in agent["secrets"]} == {
        "CW_CONFIG_CONTENT": "${CW_AGENT_CONFIG_ARN}",
        "PROMETHEUS_CONFIG_CONTENT": "${PROMETHEUS_CONFIG_ARN}",
    }
    template_vars = resource_locals()["template_vars"]
    assert "aws_ssm_parameter.agent_config" in template_vars[kind]["CW_AGENT_CONFIG_ARN"]
    assert "aws_ssm_parameter.prometheus_config" in template_vars[kind]["PROMETHEUS_CONFIG_ARN"]


def resource_locals() -> dict[str, Any]:
    return parsed("modules/service")["locals"]


@pytest.mark.parametrize("kind", ["web", "worker"])
def test_every_placeholder_has_a_terraform_value(kind: str) -> None:
    template_vars = resource_locals()["template_vars"]
    text = (DEPLOY / "ecs" / f"{kind}.json").read_text()
    provided = set(template_vars["common"]) | set(template_vars[kind]) | {"IMAGE"}
    assert set(PLACEHOLDER.findall(text)) - provided == set()


def environment_of(kind: str) -> dict[str, str]:
    app = next(c for c in task_definition(kind)["containerDefinitions"] if c["name"] == kind)
    return {e["name"]: e["value"] for e in app["environment"]}


def test_web_sums_its_granian_processes_in_a_writable_directory() -> None:
    assert environment_of("web")["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"


def test_worker_serves_metrics_on_the_port_the_agent_scrapes_and_sizes_its_pool() -> None:
    env = environment_of("worker")
    assert env["WORKER_METRICS_PORT"] == "${WORKER_METRICS_PORT}"
    assert env["WORKER_DB_POOL_SIZE"] == "${WORKER_DB_POOL_SIZE}"
    observability = resource_locals()
    assert observability["worker_metrics_port"] == 9101
    assert unquote(observability["scrape_targets"]["worker"]) == "localhost:${local.worker_metrics_port}"
    assert unquote(observability["scrape_targets"]["web"]) == "localhost:8000"


# ------------------------------------------------------- metrics reach CloudWatch


def app_metric_names() -> set[str]:
    """Names the app exposes (web and worker modules are imported above)."""
    assert sweetdream.platform.metrics.REQUESTS and workers.metrics.JOBS
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def selectors() -> list[str]:
    declarations = resource_locals()["metric_declarations"]
    return [unquote(s) for rules in declarations.values() for rule in rules for s in rule["metric_selectors"]]


def test_every_metric_the_agent_publishes_exists_in_the_app() -> None:
    names = app_metric_names()
    for selector in selectors():
        assert any(re.fullmatch(selector, n) for n in names), selector


def test_every_alarm_on_an_app_metric_reads_a_metric_the_agent_publishes() -> None:
    alarms = parsed("modules/monitoring")["resource"]["aws_cloudwatch_metric_alarm"]
    own = {name: a for name, a in alarms.items() if a.get("namespace") == "${var.metrics_namespace}"}
    assert set(own) == {"outbox_failed", "outbox_lag", "queue_age", "export_failed"}
    for alarm in own.values():
        metric = unquote(alarm["metric_name"])
        assert any(re.fullmatch(s, metric) for s in selectors()), metric


def test_metrics_path_is_answered_404_by_the_load_balancer() -> None:
    rule = resource("modules/service", "aws_lb_listener_rule", "no_metrics_from_internet")
    assert rule["listener_arn"] == "${aws_lb_listener.https.arn}"
    assert unquote(rule["action"][0]["fixed_response"][0]["status_code"]) == "404"
    assert rule["condition"][0]["path_pattern"][0]["values"] == ['"/metrics"', '"/metrics/*"']


# ------------------------------------------------------------------- alarms


EXPECTED_ALARM_METRICS = {
    "latency_p95": "TargetResponseTime",
    "unhealthy_hosts": "UnHealthyHostCount",
    "ecs": "${each.value.metric}",
    "rds_cpu": "CPUUtilization",
    "rds_free_storage": "FreeStorageSpace",
    "rds_connections": "DatabaseConnections",
    "redis_memory": "DatabaseMemoryUsagePercentage",
    "outbox_failed": "sweetdream_outbox_failed_events",
    "outbox_lag": "sweetdream_outbox_lag_seconds",
    "queue_age": "sweetdream_queue_oldest_job_age_seconds",
    "export_failed": "sweetdream_export_runs_total",
}


def test_every_alarm_the_issue_names_exists_and_notifies_the_topic() -> None:
    alarms = parsed("modules/monitoring")["resource"]["aws_cloudwatch_metric_alarm"]
    assert set(alarms) == {"http_5xx_rate", *EXPECTED_ALARM_METRICS}
    for name, metric in EXPECTED_ALARM_METRICS.items():
        assert unquote(alarms[name]["metric_name"]) == metric, name
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == "${local.alarm_actions}", name
    assert parsed("modules/monitoring")["locals"]["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
    # 5xx: the tasks' and the load balancer's own, as a rate.
    rate = alarms["http_5xx_rate"]
    assert rate["for_each"] == {"target": '"HTTPCode_Target_5XX_Count"', "alb": '"HTTPCode_ELB_5XX_Count"'}
    assert "100 * errors / requests" in rate["metric_query"][0]["expression"]
    assert unquote(alarms["latency_p95"]["extended_statistic"]) == "p95"
    assert parsed("modules/monitoring")["variable"]["latency_p95_seconds"]["default"] == 2
    ecs = parsed("modules/monitoring")["locals"]["ecs_alarms"]
    assert {(unquote(v["service"]), unquote(v["metric"])) for v in ecs.values()} == {
        ("web", "CPUUtilization"),
        ("web", "MemoryUtilization"),
        ("worker", "CPUUtilization"),
        ("worker", "MemoryUtilization"),
    }
    assert alarms["ecs"]["threshold"] == 80
    assert alarms["outbox_failed"]["threshold"] == 0
    assert unquote(alarms["queue_age"]["treat_missing_data"]) == "breaching"  # no worker reporting is bad news


def test_alarm_email_subscription_and_a_dashboard_in_both_environments() -> None:
    subscription = resource("modules/monitoring", "aws_sns_topic_subscription", "email")
    assert unquote(subscription["protocol"]) == "email"
    assert subscription["endpoint"] == "${var.alert_email}"
    assert "aws_cloudwatch_dashboard" in parsed("modules/monitoring")["resource"]
    for env in ("dev", "prod"):
        monitoring = module_args(env, "monitoring")
        assert monitoring["source"] == "../../modules/monitoring"
        assert monitoring["alert_email"] == "${var.alert_email}"
        assert "alert_email" in parsed(f"environments/{env}")["variable"]


def test_the_alarm_topic_is_encrypted_and_cloudwatch_may_use_the_key() -> None:
    assert resource("modules/monitoring", "aws_sns_topic", "alarms")["kms_master_key_id"] == "${var.kms_key_arn}"
    assert "cloudwatch.amazonaws.com" in (TF / "modules/kms/main.tf").read_text()


# ------------------------------------------------------ retention and backups


@pytest.mark.parametrize(("env", "days"), [("dev", 7), ("prod", 30)])
def test_log_retention_and_backups(env: str, days: int) -> None:
    assert module_args(env, "service")["log_retention_days"] == days
    # VPC flow logs are the network's audit trail: they keep the network module's year.
    assert "log_retention_days" not in module_args(env, "network")
    assert module_args(env, "data")["backup_retention_days"] == days


def test_alb_access_logs_in_prod_only_with_a_bucket_the_load_balancer_may_write() -> None:
    assert module_args("prod", "service")["alb_access_logs"] is True
    assert module_args("dev", "service")["alb_access_logs"] is False
    policy = parsed("modules/service")["data"]["aws_iam_policy_document"]["alb_logs"]
    writer = policy["statement"][0]
    assert writer["actions"] == ['"s3:PutObject"']
    assert writer["principals"][0]["identifiers"] == ["${data.aws_elb_service_account.this.arn}"]
    sse = resource("modules/service", "aws_s3_bucket_server_side_encryption_configuration", "alb_logs")
    assert unquote(sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]) == "AES256"
    lb = resource("modules/service", "aws_lb", "web")
    assert "access_logs" in str(lb["dynamic"])


# ------------------------------------------------------------------- scaling


@pytest.mark.parametrize(("env", "low", "high"), [("dev", 1, 3), ("prod", 2, 10)])
def test_web_and_worker_scale_within_the_environments_bounds(env: str, low: int, high: int) -> None:
    service = module_args(env, "service")
    assert (service["web_min_capacity"], service["web_max_capacity"]) == (low, high)
    assert (service["worker_min_capacity"], service["worker_max_capacity"]) == (low, high)


def test_only_exports_and_abandoned_uploads_expire_never_product_images() -> None:
    """The bucket holds the nightly exports and the product images: an expiration rule with no
    prefix would delete the shop's images after the exports' retention."""
    rules = resource("modules/data", "aws_s3_bucket_lifecycle_configuration", "exports")["rule"]
    expiring = {
        unquote(rule["filter"][0]["prefix"]): unquote(rule["expiration"][0]["days"])
        for rule in rules
        if rule.get("expiration")
    }
    assert expiring == {"user-actions/": "${var.export_retention_days}", "media/incoming/": 1}


def test_services_leave_desired_count_to_autoscaling() -> None:
    for name in ("web", "worker"):
        lifecycle = resource("modules/service", "aws_ecs_service", name)["lifecycle"][0]
        assert "desired_count" in lifecycle["ignore_changes"]


def test_web_tracks_cpu_and_requests_per_task_worker_tracks_queue_per_task() -> None:
    policies = parsed("modules/service")["resource"]["aws_appautoscaling_policy"]
    cpu = policies["web_cpu"]["target_tracking_scaling_policy_configuration"][0]
    assert cpu["target_value"] == 70
    assert unquote(cpu["predefined_metric_specification"][0]["predefined_metric_type"]) == (
        "ECSServiceAverageCPUUtilization"
    )
    requests = str(policies["web_requests"])
    assert "RequestCount" in requests and "RunningTaskCount" in requests
    queue = str(policies["worker_queue"])
    assert "sweetdream_queue_depth" in queue and "${local.metrics_namespace}" in queue


# Approximate max_connections of the classes the environments use (RDS PostgreSQL's default,
# LEAST(DBInstanceClassMemory / 9531392, 5000), a little under memory / 9531392).
MAX_CONNECTIONS = {"db.t4g.micro": 80, "db.t4g.medium": 400}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_pools_fit_the_database_at_full_scale_during_a_deployment(env: str) -> None:
    service, data = module_args(env, "service"), module_args(env, "data")
    concurrency = 2  # granian processes per web task (web_concurrency's default)
    deploy_factor = 2  # a deployment runs up to 200 % of the tasks
    web = service["web_max_capacity"] * deploy_factor * concurrency * service["db_pool_size"]
    worker = service["worker_max_capacity"] * deploy_factor * service["worker_db_pool_size"]
    reserved = 10
    assert web + worker + reserved <= MAX_CONNECTIONS[data["db_instance_class"]]
    assert service["db_max_connections"] == "${module.data.db_max_connections}"
    limits = parsed("modules/data")["locals"]["max_connections_by_class"]
    assert limits['"' + data["db_instance_class"] + '"'] == MAX_CONNECTIONS[data["db_instance_class"]]


def test_terraform_refuses_a_budget_over_the_limit() -> None:
    budget = resource("modules/service", "terraform_data", "db_connection_budget")
    condition = budget["lifecycle"][0]["precondition"][0]["condition"]
    assert condition == "${local.db_connection_budget <= var.db_max_connections}"


# -------------------------------------------------------------- edge and access


def test_waf_on_the_alb_with_managed_rules_and_a_sign_in_rate_limit() -> None:
    acl = resource("modules/service", "aws_wafv2_web_acl", "web")
    groups = {
        unquote(rule["statement"][0]["managed_rule_group_statement"][0]["name"])
        for rule in acl["rule"]
        if "managed_rule_group_statement" in rule["statement"][0]
    }
    assert groups == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    rate = next(r for r in acl["rule"] if "rate_based_statement" in r["statement"][0])
    scope = str(rate["statement"][0]["rate_based_statement"][0]["scope_down_statement"])
    assert "POST" in scope and "/account/(login|register)" in scope
    assert "block" in rate["action"][0]
    association = resource("modules/service", "aws_wafv2_web_acl_association", "web")
    assert association["resource_arn"] == "${aws_lb.web.arn}"


def test_ecs_exec_is_audited_and_off_in_prod_by_default() -> None:
    for name in ("web", "worker"):
        service = resource("modules/service", "aws_ecs_service", name)
        assert service["enable_execute_command"] == "${var.enable_execute_command}"
    cluster = resource("modules/service", "aws_ecs_cluster", "this")
    exec_config = cluster["configuration"][0]["execute_command_configuration"][0]
    assert exec_config["kms_key_id"] == "${var.kms_key_arn}"
    assert unquote(exec_config["logging"]) == "OVERRIDE"
    assert exec_config["log_configuration"][0]["cloud_watch_encryption_enabled"] is True
    assert module_args("prod", "service")["enable_execute_command"] == "${var.enable_execute_command}"
    assert parsed("environments/prod")["variable"]["enable_execute_command"]["default"] is False
    assert parsed("modules/service")["variable"]["enable_execute_command"]["default"] is False


def test_private_subnets_reach_s3_through_a_gateway_endpoint() -> None:
    endpoint = resource("modules/network", "aws_vpc_endpoint", "s3")
    assert unquote(endpoint["vpc_endpoint_type"]) == "Gateway"
    assert endpoint["route_table_ids"] == "${aws_route_table.private[*].id}"
