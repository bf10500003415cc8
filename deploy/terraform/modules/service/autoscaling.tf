# Target-tracking autoscaling. Terraform sets each service's desired_count once; from then on it
# belongs to these policies (the services ignore desired_count drift, main.tf).
#
# web: CPU at 70 %, and requests per task. The latter is the ALB's RequestCount divided by the
# service's running tasks (metric math) rather than the predefined ALBRequestCountPerTarget, which
# names one target group: in prod CodeDeploy swaps blue and green at every release, so a policy
# tied to blue would read an idle group half of the time.
# worker: due jobs per running worker task (sweetdream_queue_depth, published by the worker through
# its agent sidecar, observability.tf); a worker runs up to 20 jobs at once (max_jobs).

locals {
  scaling = {
    web    = { min = var.web_min_capacity, max = var.web_max_capacity }
    worker = { min = var.worker_min_capacity, max = var.worker_max_capacity }
  }
}

resource "aws_appautoscaling_target" "service" {
  for_each           = local.scaling
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${each.key}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
  depends_on         = [aws_ecs_service.web, aws_ecs_service.worker]
}

resource "aws_appautoscaling_policy" "web_cpu" {
  name               = "${var.name}-web-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service["web"].service_namespace
  resource_id        = aws_appautoscaling_target.service["web"].resource_id
  scalable_dimension = aws_appautoscaling_target.service["web"].scalable_dimension
  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    target_value       = 70
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
  }
}

resource "aws_appautoscaling_policy" "web_requests" {
  name               = "${var.name}-web-requests-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service["web"].service_namespace
  resource_id        = aws_appautoscaling_target.service["web"].resource_id
  scalable_dimension = aws_appautoscaling_target.service["web"].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.web_requests_per_task_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    customized_metric_specification {
      metrics {
        id          = "requests"
        return_data = false
        metric_stat {
          metric {
            namespace   = "AWS/ApplicationELB"
            metric_name = "RequestCount"
            dimensions {
              name  = "LoadBalancer"
              value = aws_lb.web.arn_suffix
            }
          }
          stat = "Sum"
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = "web"
            }
          }
          stat = "Average"
        }
      }
      metrics {
        id          = "per_task"
        label       = "ALB requests per web task (a minute)"
        expression  = "requests / tasks" # the service never runs fewer than min_capacity (>= 1) tasks
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_policy" "worker_queue" {
  name               = "${var.name}-worker-queue-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service["worker"].service_namespace
  resource_id        = aws_appautoscaling_target.service["worker"].resource_id
  scalable_dimension = aws_appautoscaling_target.service["worker"].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_jobs_per_task_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    customized_metric_specification {
      metrics {
        id          = "depth"
        return_data = false
        metric_stat {
          metric {
            namespace   = local.metrics_namespace
            metric_name = "sweetdream_queue_depth"
            dimensions {
              name  = "Service"
              value = "worker"
            }
          }
          stat = "Maximum" # every worker task reports the same queue
        }
      }
      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = "worker"
            }
          }
          stat = "Average"
        }
      }
      metrics {
        id          = "per_task"
        label       = "Due jobs per worker task"
        expression  = "depth / tasks"
        return_data = true
      }
    }
  }
}

# The database connection budget (deploy/README.md, "Metrics, alarms and scaling"): at the most
# tasks autoscaling allows, during a deployment (up to deployment_maximum_percent of them running),
# every process's pool full (no overflow), plus the release task and a few for people and RDS.
locals {
  web_connections_per_task    = var.web_concurrency * var.db_pool_size
  worker_connections_per_task = var.worker_db_pool_size
  db_connection_budget = (
    ceil(var.web_max_capacity * var.deployment_maximum_percent / 100) * local.web_connections_per_task
    + var.worker_max_capacity * 2 * local.worker_connections_per_task
    + var.db_reserved_connections
  )
}

resource "terraform_data" "db_connection_budget" {
  input = local.db_connection_budget
  lifecycle {
    precondition {
      condition     = local.db_connection_budget <= var.db_max_connections
      error_message = "The pools can open more connections than the database allows: lower db_pool_size, worker_db_pool_size or the max capacities, or pick a larger db_instance_class (deploy/README.md)."
    }
  }
}
