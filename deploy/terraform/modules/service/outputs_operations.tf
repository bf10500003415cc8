output "metrics_namespace" {
  description = "CloudWatch namespace of the app's own metrics (observability.tf)."
  value       = local.metrics_namespace
}

output "target_group_arn_suffixes" {
  value = { for k, tg in aws_lb_target_group.web : k => tg.arn_suffix }
}

output "waf_web_acl_name" {
  value = aws_wafv2_web_acl.web.name
}

output "db_connection_budget" {
  description = "The most connections the pools can open (autoscaling.tf); at most db_max_connections."
  value       = terraform_data.db_connection_budget.output
}
