# Alarms and the dashboard of one environment. Every alarm notifies the SNS topic (and its email
# subscriber) when it fires and when it clears.
#
# Sources: the ALB, ECS, RDS and ElastiCache metrics AWS publishes, and the app's own metrics in
# SweetDream/<env> (published by each task's CloudWatch agent sidecar, service/observability.tf).
# The worker's queue and outbox figures are the shop's, reported alike by every worker task, so
# alarms read their Maximum.

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  ecs_alarms = {
    "web-cpu"       = { service = "web", metric = "CPUUtilization" }
    "web-memory"    = { service = "web", metric = "MemoryUtilization" }
    "worker-cpu"    = { service = "worker", metric = "CPUUtilization" }
    "worker-memory" = { service = "worker", metric = "MemoryUtilization" }
  }
  redis_nodes = [for i in range(var.redis_node_count) : format("%s-%03d", var.redis_replication_group_id, i + 1)]
  alarm_names = concat(
    [for a in aws_cloudwatch_metric_alarm.http_5xx_rate : a.alarm_name],
    [aws_cloudwatch_metric_alarm.latency_p95.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.unhealthy_hosts : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.ecs : a.alarm_name],
    [
      aws_cloudwatch_metric_alarm.rds_cpu.alarm_name,
      aws_cloudwatch_metric_alarm.rds_free_storage.alarm_name,
      aws_cloudwatch_metric_alarm.rds_connections.alarm_name,
    ],
    [for a in aws_cloudwatch_metric_alarm.redis_memory : a.alarm_name],
    [
      aws_cloudwatch_metric_alarm.outbox_failed.alarm_name,
      aws_cloudwatch_metric_alarm.outbox_lag.alarm_name,
      aws_cloudwatch_metric_alarm.queue_age.alarm_name,
      aws_cloudwatch_metric_alarm.export_failed.alarm_name,
    ],
  )
}

# ----------------------------------------------------------------- the topic

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

# ------------------------------------------------------------ load balancer

# 5xx as a share of requests, for the tasks' answers (Target) and the ALB's own (no healthy
# target, timeouts): a busy minute with a few errors is not an incident, a quiet one is not either.
resource "aws_cloudwatch_metric_alarm" "http_5xx_rate" {
  for_each            = { target = "HTTPCode_Target_5XX_Count", alb = "HTTPCode_ELB_5XX_Count" }
  alarm_name          = "${var.name}-${each.key}-5xx-rate"
  alarm_description   = "More than ${var.error_rate_percent} % of requests answered 5xx by the ${each.key == "alb" ? "load balancer itself" : "web tasks"} (3 of 5 minutes)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_percent
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= 20, 100 * errors / requests, 0)"
    label       = "5xx %"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = each.value
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }
  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "latency_p95" {
  alarm_name          = "${var.name}-latency-p95"
  alarm_description   = "95th percentile of the web tasks' response time above ${var.latency_p95_seconds} s for 5 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = var.alb_arn_suffix }
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.latency_p95_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  for_each            = var.target_group_arn_suffixes
  alarm_name          = "${var.name}-${each.key}-unhealthy-hosts"
  alarm_description   = "A web task in the ${each.key} target group fails its health check (/health) for 3 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { LoadBalancer = var.alb_arn_suffix, TargetGroup = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ---------------------------------------------------------------------- ECS

resource "aws_cloudwatch_metric_alarm" "ecs" {
  for_each            = local.ecs_alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "The ${each.value.service} service's average ${each.value.metric} above 80 % for 5 minutes (autoscaling should have added tasks: is it at its maximum?)."
  namespace           = "AWS/ECS"
  metric_name         = each.value.metric
  dimensions          = { ClusterName = var.cluster_name, ServiceName = each.value.service }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 5
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ---------------------------------------------------------------------- RDS

resource "aws_cloudwatch_metric_alarm" "rds_cpu" {
  alarm_name          = "${var.name}-rds-cpu"
  alarm_description   = "Database CPU above 80 % for 10 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = var.db_identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "rds_free_storage" {
  alarm_name          = "${var.name}-rds-free-storage"
  alarm_description   = "Less than 10 % of the database's allocated storage free (storage autoscaling grows it up to 4x; this says it is growing or stuck)."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = var.db_identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.db_allocated_storage_gib * 1024 * 1024 * 1024 / 10
  comparison_operator = "LessThanThreshold"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "rds_connections" {
  alarm_name          = "${var.name}-rds-connections"
  alarm_description   = "Database connections above 80 % of max_connections (${var.db_max_connections}) for 5 minutes: see the connection budget in deploy/README.md."
  namespace           = "AWS/RDS"
  metric_name         = "DatabaseConnections"
  dimensions          = { DBInstanceIdentifier = var.db_identifier }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = floor(var.db_max_connections * 0.8)
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# -------------------------------------------------------------------- Redis

resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  for_each            = toset(local.redis_nodes)
  alarm_name          = "${var.name}-redis-memory-${each.key}"
  alarm_description   = "Redis node ${each.key} above 80 % of its memory for 10 minutes (sessions, queue and cache share it; queue keys are never evicted)."
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = each.key }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# -------------------------------------------------- the app's own metrics

resource "aws_cloudwatch_metric_alarm" "outbox_failed" {
  alarm_name          = "${var.name}-outbox-failed-events"
  alarm_description   = "An outbox event gave up after every try: an order is stuck. `sweetdream outbox` lists it with its error; `sweetdream outbox retry` sends it again."
  namespace           = var.metrics_namespace
  metric_name         = "sweetdream_outbox_failed_events"
  dimensions          = { Service = "worker" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "outbox_lag" {
  alarm_name          = "${var.name}-outbox-lag"
  alarm_description   = "The oldest undelivered outbox event is over 10 minutes old: orders wait for payment, emails or stock alerts."
  namespace           = var.metrics_namespace
  metric_name         = "sweetdream_outbox_lag_seconds"
  dimensions          = { Service = "worker" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 600
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Missing data breaches: no worker reporting for 5 minutes means no worker running.
resource "aws_cloudwatch_metric_alarm" "queue_age" {
  alarm_name          = "${var.name}-queue-age"
  alarm_description   = "The oldest due job has waited over ${var.queue_age_seconds} s for 3 minutes, or no worker has reported for 5: workers are stuck, dead or too few."
  namespace           = var.metrics_namespace
  metric_name         = "sweetdream_queue_oldest_job_age_seconds"
  dimensions          = { Service = "worker" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.queue_age_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The worker counts each export run in sweetdream_export_runs_total{outcome} (workers/jobs.py:
# the 17:00 UTC cron and the admin's button); a run that failed every try counts "failed" once,
# logs "export failed: shop day ..." and emails the admins.
resource "aws_cloudwatch_metric_alarm" "export_failed" {
  alarm_name          = "${var.name}-nightly-export-failed"
  alarm_description   = "The nightly export to S3 failed: run `sweetdream export --date YYYY-MM-DD` for that shop day (it is idempotent)."
  namespace           = var.metrics_namespace
  metric_name         = "sweetdream_export_runs_total"
  dimensions          = { Service = "worker", outcome = "failed" }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
