# One dashboard per environment: traffic and errors, latency, tasks, the queue and the outbox,
# the data stores, and every alarm's state. deploy/README.md ("Reading the dashboard") says what
# normal looks like.

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name
  alb    = var.alb_arn_suffix
  ns     = var.metrics_namespace

  widgets = [
    {
      title = "Requests and 5xx (ALB, per minute)"
      metrics = [
        ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", local.alb, { stat = "Sum" }],
        ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", local.alb, { stat = "Sum" }],
        ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", local.alb, { stat = "Sum" }],
        ["AWS/ApplicationELB", "HTTPCode_Target_4XX_Count", "LoadBalancer", local.alb, { stat = "Sum" }],
      ]
    },
    {
      title = "Response time (s): p50, p95, p99"
      metrics = [
        ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", local.alb, { stat = "p50" }],
        ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", local.alb, { stat = "p95" }],
        ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", local.alb, { stat = "p99" }],
      ]
    },
    {
      title = "Answers by status (app) and requests in flight"
      metrics = [
        [{ expression = "SEARCH('{${local.ns},Service,status} MetricName=\"sweetdream_http_requests_total\"', 'Sum', 60)", id = "status", label = "" }],
        [local.ns, "sweetdream_http_requests_in_flight", "Service", "web", { stat = "Sum", yAxis = "right" }],
      ]
    },
    {
      title = "Running tasks"
      metrics = [
        ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.cluster_name, "ServiceName", "web", { stat = "Average" }],
        ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.cluster_name, "ServiceName", "worker", { stat = "Average" }],
      ]
    },
    {
      title = "CPU and memory (%)"
      metrics = [
        ["AWS/ECS", "CPUUtilization", "ClusterName", var.cluster_name, "ServiceName", "web", { stat = "Average" }],
        ["AWS/ECS", "MemoryUtilization", "ClusterName", var.cluster_name, "ServiceName", "web", { stat = "Average" }],
        ["AWS/ECS", "CPUUtilization", "ClusterName", var.cluster_name, "ServiceName", "worker", { stat = "Average" }],
        ["AWS/ECS", "MemoryUtilization", "ClusterName", var.cluster_name, "ServiceName", "worker", { stat = "Average" }],
      ]
    },
    {
      title = "Queue: due jobs, deferred retries, oldest due job (s)"
      metrics = [
        [local.ns, "sweetdream_queue_depth", "Service", "worker", { stat = "Maximum" }],
        [local.ns, "sweetdream_queue_deferred", "Service", "worker", { stat = "Maximum" }],
        [local.ns, "sweetdream_queue_oldest_job_age_seconds", "Service", "worker", { stat = "Maximum", yAxis = "right" }],
      ]
    },
    {
      title = "Outbox: lag (s) and failed events"
      metrics = [
        [local.ns, "sweetdream_outbox_lag_seconds", "Service", "worker", { stat = "Maximum" }],
        [local.ns, "sweetdream_outbox_failed_events", "Service", "worker", { stat = "Maximum", yAxis = "right" }],
      ]
    },
    {
      title = "Jobs by function and outcome (per minute)"
      metrics = [
        [{ expression = "SEARCH('{${local.ns},Service,function,outcome} MetricName=\"sweetdream_jobs_total\"', 'Sum', 60)", id = "jobs", label = "" }],
      ]
    },
    {
      title = "Database: CPU (%), connections"
      metrics = [
        ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", var.db_identifier, { stat = "Average" }],
        ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", var.db_identifier, { stat = "Maximum", yAxis = "right" }],
      ]
    },
    {
      title = "Database: free storage (bytes)"
      metrics = [
        ["AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", var.db_identifier, { stat = "Minimum" }],
      ]
    },
    {
      title = "Redis: memory used (%)"
      metrics = [
        for node in local.redis_nodes : ["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId", node, { stat = "Maximum" }]
      ]
    },
    {
      title = "WAF: blocked requests"
      metrics = [
        ["AWS/WAFV2", "BlockedRequests", "WebACL", var.waf_web_acl_name, "Region", local.region, "Rule", "ALL", { stat = "Sum" }],
      ]
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat(
      [{
        type       = "alarm"
        x          = 0
        y          = 0
        width      = 24
        height     = 4
        properties = { title = "Alarms", alarms = [for n in local.alarm_names : "arn:aws:cloudwatch:${local.region}:${data.aws_caller_identity.current.account_id}:alarm:${n}"] }
      }],
      [for i, w in local.widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = 4 + floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          region  = local.region
          view    = "timeSeries"
          stacked = false
          period  = 60
          metrics = w.metrics
        }
      }],
    )
  })
}

data "aws_caller_identity" "current" {}
