"""Static checks of the nightly export's deploy pieces: the worker may write exactly user-actions/,
Glue reads the same layout by partition projection, Athena has the seven insights, and an alarm
fires when a night's export fails."""

from __future__ import annotations

from pathlib import Path

import hcl2

TF = Path(__file__).resolve().parents[2] / "deploy" / "terraform"


def unquoted(value: object) -> object:
    """python-hcl2 keeps the quotes of labels and strings: drop them, everywhere."""
    if isinstance(value, dict):
        return {str(unquoted(key)): unquoted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unquoted(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parsed(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        document = unquoted(hcl2.load(handle))
    assert isinstance(document, dict)
    return document


def blocks(document: dict, kind: str, type_: str) -> dict:
    found: dict = {}
    for block in document.get(kind, []):
        for name, body in block.get(type_, {}).items():
            found[name.strip('"')] = body
    return found


def test_the_worker_may_write_exactly_user_actions():
    variables = {
        name: body for block in parsed(TF / "modules/service/variables.tf")["variable"] for name, body in block.items()
    }
    assert variables["export_prefix"]["default"] == "user-actions/"
    outputs = {name: body for block in parsed(TF / "modules/data/outputs.tf")["output"] for name, body in block.items()}
    assert "local.export_prefix" in outputs["export_prefix"]["value"]
    analytics = (TF / "modules/data/analytics.tf").read_text(encoding="utf-8")
    assert 'export_prefix   = "user-actions/"' in analytics
    for env in ("dev", "prod"):
        assert "export_prefix      = module.data.export_prefix" in (TF / f"environments/{env}/main.tf").read_text()
    policy = blocks(parsed(TF / "modules/service/main.tf"), "data", "aws_iam_policy_document")["export"]
    statements = {s["sid"]: s for s in policy["statement"]}
    assert statements["WriteExports"]["resources"] == ["${var.export_bucket_arn}/${var.export_prefix}*"]
    assert sorted(statements["WriteExports"]["actions"]) == [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:PutObject",
    ]
    assert statements["ListExports"]["condition"][0]["values"] == ["${var.export_prefix}*"]
    main = (TF / "modules/service/main.tf").read_text(encoding="utf-8")
    assert "analytics/" not in main


def test_glue_reads_the_export_by_partition_projection():
    table = blocks(parsed(TF / "modules/data/analytics.tf"), "resource", "aws_glue_catalog_table")["user_actions"]
    parameters = table["parameters"]
    assert parameters["projection.enabled"] == "true"
    assert [parameters[f"projection.{key}.type"] for key in ("year", "month", "day")] == ["integer"] * 3
    assert parameters["projection.month.digits"] == parameters["projection.day.digits"] == "2"
    assert parameters["storage.location.template"].endswith("year=$${year}/month=$${month}/day=$${day}/")
    assert [key["name"] for key in table["partition_keys"]] == ["year", "month", "day"]
    serde = table["storage_descriptor"][0]["ser_de_info"][0]
    assert serde["serialization_library"] == "org.openx.data.jsonserde.JsonSerDe"
    columns = [column["name"] for column in table["storage_descriptor"][0]["columns"]]
    assert columns == ["id", "event_id", "occurred_at", "name", "user_id", "visitor_id", "properties"]


def test_athena_has_a_named_query_for_each_of_the_seven_insights():
    document = parsed(TF / "modules/data/analytics.tf")
    queries = document["locals"][0]["athena_queries"]
    assert sorted(queries) == sorted(
        [
            "product-views",
            "cart-additions",
            "purchases-revenue",
            "customer-frequency",
            "best-sellers",
            "category-performance",
            "funnel",
        ]
    )
    named = blocks(document, "resource", "aws_athena_named_query")["insight"]
    assert named["for_each"] == "${local.athena_queries}"


def test_an_alarm_fires_when_a_nights_export_fails():
    alarm = blocks(parsed(TF / "modules/monitoring/main.tf"), "resource", "aws_cloudwatch_metric_alarm")[
        "export_failed"
    ]
    assert alarm["metric_name"] == "sweetdream_export_runs_total"
    assert alarm["dimensions"]["outcome"] == "failed"
    assert alarm["threshold"] == 0 and alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["alarm_actions"] == "${local.alarm_actions}"
