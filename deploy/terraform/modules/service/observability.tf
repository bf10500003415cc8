# How the app's Prometheus metrics reach CloudWatch.
#
# Each web and worker task runs a CloudWatch agent sidecar (deploy/ecs/*.json, container
# "cloudwatch-agent", not essential: the shop keeps serving if it stops). Every minute it scrapes
# the app on localhost (web: :8000/metrics, summed over the task's granian processes; worker:
# 127.0.0.1:WORKER_METRICS_PORT) and writes the samples as embedded-metric-format (EMF) log events
# to /ecs/<name>/metrics. The metric_declaration rules below turn the ones alarms and scaling need
# into CloudWatch metrics in the SweetDream/<env> namespace; every label of every sample (per route,
# per function) stays queryable in that log group with Logs Insights, without paying for a metric
# per route. The agent's config lives in SSM Parameter Store, injected by ECS as the secrets
# CW_CONFIG_CONTENT and PROMETHEUS_CONFIG_CONTENT.
#
# /metrics is never reachable from the internet: the HTTPS listener answers it 404 itself (below)
# and the app refuses any request carrying X-Forwarded-For (src/sweetdream/platform/metrics.py).

locals {
  metrics_namespace   = "SweetDream/${var.environment}"
  worker_metrics_port = 9101

  scrape_targets = {
    web    = "localhost:8000"
    worker = "localhost:${local.worker_metrics_port}"
  }

  # Which samples become CloudWatch metrics, with which dimensions (label names).
  metric_declarations = {
    web = [
      {
        source_labels    = ["job"]
        label_matcher    = "^sweetdream-web$"
        dimensions       = [["Service", "status"]]
        metric_selectors = ["^sweetdream_http_requests_total$"]
      },
      {
        source_labels    = ["job"]
        label_matcher    = "^sweetdream-web$"
        dimensions       = [["Service"]]
        metric_selectors = ["^sweetdream_http_requests_in_flight$"]
      },
    ]
    worker = [
      {
        source_labels = ["job"]
        label_matcher = "^sweetdream-worker$"
        dimensions    = [["Service"]]
        metric_selectors = [
          "^sweetdream_queue_depth$",
          "^sweetdream_queue_deferred$",
          "^sweetdream_queue_oldest_job_age_seconds$",
          "^sweetdream_outbox_lag_seconds$",
          "^sweetdream_outbox_failed_events$",
        ]
      },
      {
        source_labels    = ["job"]
        label_matcher    = "^sweetdream-worker$"
        dimensions       = [["Service", "function", "outcome"]]
        metric_selectors = ["^sweetdream_jobs_total$"]
      },
      {
        source_labels    = ["job"]
        label_matcher    = "^sweetdream-worker$"
        dimensions       = [["Service", "outcome"]]
        metric_selectors = ["^sweetdream_export_runs_total$"]
      },
    ]
  }
}

resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/ecs/${var.name}/metrics"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_ssm_parameter" "prometheus_config" {
  for_each    = local.processes
  name        = "/${var.name}/cloudwatch-agent/${each.key}/prometheus"
  description = "Prometheus scrape config of the ${each.key} task's CloudWatch agent sidecar"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value = yamlencode({
    global = { scrape_interval = "60s", scrape_timeout = "10s" }
    scrape_configs = [{
      job_name     = "sweetdream-${each.key}"
      metrics_path = "/metrics"
      static_configs = [{
        targets = [local.scrape_targets[each.key]]
        labels  = { Service = each.key }
      }]
    }]
  })
  tags = var.tags
}

resource "aws_ssm_parameter" "agent_config" {
  for_each    = local.processes
  name        = "/${var.name}/cloudwatch-agent/${each.key}/config"
  description = "CloudWatch agent config of the ${each.key} task: Prometheus to EMF in ${local.metrics_namespace}"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value = jsonencode({
    agent = { region = local.region }
    logs = {
      force_flush_interval = 5
      metrics_collected = {
        prometheus = {
          log_group_name         = aws_cloudwatch_log_group.metrics.name
          prometheus_config_path = "env:PROMETHEUS_CONFIG_CONTENT"
          emf_processor = {
            metric_namespace   = local.metrics_namespace
            metric_declaration = local.metric_declarations[each.key]
          }
        }
      }
    }
  })
  tags = var.tags
}

# ECS reads the two parameters when it starts a task (execution role).
data "aws_iam_policy_document" "agent_config" {
  statement {
    sid     = "AgentConfig"
    actions = ["ssm:GetParameters"]
    resources = concat(
      [for p in aws_ssm_parameter.agent_config : p.arn],
      [for p in aws_ssm_parameter.prometheus_config : p.arn],
    )
  }
}

resource "aws_iam_role_policy" "agent_config" {
  name   = "cloudwatch-agent-config"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.agent_config.json
}

# The sidecar writes EMF events with the task role's credentials: only to the metrics log group.
data "aws_iam_policy_document" "agent_publish" {
  statement {
    sid       = "WriteMetricEvents"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
  statement {
    sid       = "FindMetricsLogGroup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:aws:logs:${local.region}:${local.account_id}:log-group:*"]
  }
}

resource "aws_iam_role_policy" "agent_publish" {
  for_each = local.processes
  name     = "cloudwatch-agent-publish"
  role     = aws_iam_role.task[each.key].id
  policy   = data.aws_iam_policy_document.agent_publish.json
}

# The first lock on /metrics: the ALB answers it itself, so it never reaches a task from outside.
resource "aws_lb_listener_rule" "no_metrics_from_internet" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 1
  action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "Not Found"
      status_code  = "404"
    }
  }
  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }
  tags = var.tags
}
