output "ecr_repository_url" {
  value = aws_ecr_repository.app.repository_url
}

output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "web_service_name" {
  value = aws_ecs_service.web.name
}

output "worker_service_name" {
  value = aws_ecs_service.worker.name
}

output "task_security_group_id" {
  value = aws_security_group.tasks.id
}

output "alb_dns_name" {
  value = aws_lb.web.dns_name
}

output "alb_arn_suffix" {
  value = aws_lb.web.arn_suffix
}

output "https_listener_arn" {
  value = aws_lb_listener.https.arn
}

output "target_group_names" {
  description = "blue and green target group names (CodeDeploy pair)."
  value       = { for k, tg in aws_lb_target_group.web : k => tg.name }
}

output "task_template_vars" {
  description = "Placeholder values for deploy/ecs/*.json; see deploy/render_taskdef.py."
  value       = local.template_vars
}
