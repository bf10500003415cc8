# Inputs for metrics, autoscaling, the connection budget, WAF, ECS Exec and access logs
# (observability.tf, autoscaling.tf, waf.tf, exec.tf, access_logs.tf).

variable "environment" {
  description = "dev or prod: names the metrics namespace SweetDream/<environment>."
  type        = string
}

variable "cloudwatch_agent_image" {
  description = "The metrics sidecar. Pin a release tag from gallery.ecr.aws/cloudwatch-agent/cloudwatch-agent once one is tested."
  type        = string
  default     = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest"
}

variable "worker_db_pool_size" {
  description = "WORKER_DB_POOL_SIZE: the worker's SQLAlchemy pool (no overflow) per task."
  type        = number
  default     = 20
}

variable "db_max_connections" {
  description = "The database's max_connections (from its instance class, module.data); the pools must fit."
  type        = number
}

variable "db_reserved_connections" {
  description = "Connections kept for the release task, people (psql) and RDS itself."
  type        = number
  default     = 10
}

variable "web_min_capacity" {
  type = number
}

variable "web_max_capacity" {
  type = number
}

variable "worker_min_capacity" {
  type = number
}

variable "worker_max_capacity" {
  type = number
}

variable "web_requests_per_task_target" {
  description = "Target ALB requests per web task per minute."
  type        = number
  default     = 3000
}

variable "worker_jobs_per_task_target" {
  description = "Target due jobs per worker task (a worker runs up to 20 at once)."
  type        = number
  default     = 20
}

variable "enable_execute_command" {
  description = "ECS Exec into running tasks (audited). Off in prod unless an incident needs it."
  type        = bool
  default     = false
}

variable "alb_access_logs" {
  description = "Write ALB access logs to an S3 bucket of their own."
  type        = bool
  default     = false
}

variable "waf_auth_rate_limit" {
  description = "POSTs to /account/login and /account/register per client address in 5 minutes before WAF blocks it."
  type        = number
  default     = 100
}
