# Alarms (to alert_email through SNS) and the dashboard: modules/monitoring.

variable "alert_email" {
  description = "Address that receives every alarm (confirm the subscription email AWS sends). Empty: none."
  type        = string
  default     = ""
}

module "monitoring" {
  source                     = "../../modules/monitoring"
  name                       = local.name
  alert_email                = var.alert_email
  kms_key_arn                = module.kms.key_arn
  metrics_namespace          = module.service.metrics_namespace
  alb_arn_suffix             = module.service.alb_arn_suffix
  target_group_arn_suffixes  = module.service.target_group_arn_suffixes
  cluster_name               = module.service.cluster_name
  waf_web_acl_name           = module.service.waf_web_acl_name
  db_identifier              = module.data.db_identifier
  db_allocated_storage_gib   = module.data.db_allocated_storage_gib
  db_max_connections         = module.data.db_max_connections
  redis_replication_group_id = module.data.redis_replication_group_id
  redis_node_count           = module.data.redis_node_count
}

output "dashboard_name" {
  value = module.monitoring.dashboard_name
}

output "alarm_topic_arn" {
  value = module.monitoring.alarm_topic_arn
}

output "db_connection_budget" {
  value = module.service.db_connection_budget
}
