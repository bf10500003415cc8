variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "client_security_group_id" {
  description = "Security group of the app tasks (web, worker, release): the only clients."
  type        = string
}

variable "kms_key_arn" {
  type = string
}

variable "multi_az" {
  description = "Standby RDS instance and a Redis replica with automatic failover."
  type        = bool
  default     = true
}

variable "db_instance_class" {
  type    = string
  default = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "GiB; storage autoscaling allows up to 4x."
  type        = number
  default     = 20
}

variable "redis_node_type" {
  type    = string
  default = "cache.t4g.small"
}

variable "backup_retention_days" {
  type    = number
  default = 7
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "export_retention_days" {
  type    = number
  default = 365
}

variable "tags" {
  type    = map(string)
  default = {}
}
