variable "name" {
  description = "Name prefix, e.g. sweetdream-prod."
  type        = string
}

variable "alert_email" {
  description = "Who hears about alarms (an SNS email subscription: confirm the email AWS sends). Empty: no subscription."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "Encrypts the alarm topic."
  type        = string
}

variable "metrics_namespace" {
  description = "The app's metrics (module.service): SweetDream/<env>."
  type        = string
}

variable "alb_arn_suffix" {
  type = string
}

variable "target_group_arn_suffixes" {
  description = "blue and green target groups (arn_suffix)."
  type        = map(string)
}

variable "cluster_name" {
  type = string
}

variable "waf_web_acl_name" {
  type = string
}

variable "db_identifier" {
  type = string
}

variable "db_allocated_storage_gib" {
  type = number
}

variable "db_max_connections" {
  type = number
}

variable "redis_replication_group_id" {
  type = string
}

variable "redis_node_count" {
  type = number
}

variable "error_rate_percent" {
  description = "5xx share of requests (%) that raises the 5xx alarms."
  type        = number
  default     = 5
}

variable "latency_p95_seconds" {
  type    = number
  default = 2
}

variable "queue_age_seconds" {
  description = "Age of the oldest due job that raises the queue alarm."
  type        = number
  default     = 300
}

variable "tags" {
  type    = map(string)
  default = {}
}
