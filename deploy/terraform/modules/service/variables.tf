variable "name" {
  description = "Name prefix, e.g. sweetdream-prod (ALB/target-group names allow 32 chars)."
  type        = string
  validation {
    condition     = length(var.name) <= 26
    error_message = "name must be at most 26 characters (target group names add -green)."
  }
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr_block" {
  type = string
}

variable "public_subnet_ids" {
  type = list(string)
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "kms_key_arn" {
  type = string
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener."
  type        = string
}

variable "image_tag" {
  description = "Tag of the image for the first task-definition revision; later releases come from CI."
  type        = string
}

variable "deployment_controller" {
  description = "ECS (rolling, circuit breaker) or CODE_DEPLOY (blue/green) for the web service."
  type        = string
  validation {
    condition     = contains(["ECS", "CODE_DEPLOY"], var.deployment_controller)
    error_message = "deployment_controller must be ECS or CODE_DEPLOY."
  }
}

variable "deployment_minimum_healthy_percent" {
  type    = number
  default = 100
}

variable "deployment_maximum_percent" {
  type    = number
  default = 200
}

variable "secret_arns" {
  description = "Secrets Manager ARNs for SECRET_KEY, DATABASE_URL and REDIS_URL."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"] : contains(keys(var.secret_arns), k)])
    error_message = "secret_arns needs SECRET_KEY, DATABASE_URL and REDIS_URL."
  }
}

variable "export_bucket_name" {
  type = string
}

variable "export_bucket_arn" {
  type = string
}

variable "export_prefix" {
  description = "Key prefix the worker may write under in the export bucket (the nightly export's layout)."
  type        = string
  default     = "user-actions/"
}

variable "ses_identity_arns" {
  description = "SES identities (domain or address) the app may send as; empty = no SES permission."
  type        = list(string)
  default     = []
}

variable "mail_backend" {
  type    = string
  default = "ses"
}

variable "mail_from" {
  type    = string
  default = "SweetDream <shop@sweetdream.example>"
}

variable "log_level" {
  type    = string
  default = "INFO"
}

variable "log_retention_days" {
  type    = number
  default = 365
}

variable "db_pool_size" {
  description = "DB_POOL_SIZE: connections per web process, kept open (no overflow); web opens web_concurrency pools per task."
  type        = number
  default     = 20
}

variable "web_concurrency" {
  description = "granian worker processes per web task."
  type        = number
  default     = 2
}

variable "web_cpu" {
  type    = number
  default = 512
}

variable "web_memory" {
  type    = number
  default = 1024
}

variable "worker_cpu" {
  type    = number
  default = 256
}

variable "worker_memory" {
  type    = number
  default = 512
}

variable "web_desired_count" {
  type    = number
  default = 2
}

variable "worker_desired_count" {
  type    = number
  default = 1
}

variable "alb_deletion_protection" {
  type    = bool
  default = true
}

variable "tags" {
  type    = map(string)
  default = {}
}
