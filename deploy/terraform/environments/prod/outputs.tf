output "ecr_repository_url" {
  value = module.service.ecr_repository_url
}

output "cluster_name" {
  value = module.service.cluster_name
}

output "web_service_name" {
  value = module.service.web_service_name
}

output "worker_service_name" {
  value = module.service.worker_service_name
}

output "private_subnet_ids" {
  value = module.network.private_subnet_ids
}

output "task_security_group_id" {
  value = module.service.task_security_group_id
}

output "alb_dns_name" {
  description = "Point the shop's DNS (alias/CNAME) here."
  value       = module.service.alb_dns_name
}

output "export_bucket_name" {
  value = module.data.export_bucket_name
}

output "task_template_vars" {
  description = "Input for deploy/render_taskdef.py."
  value       = module.service.task_template_vars
}

output "codedeploy_app_name" {
  value = aws_codedeploy_app.web.name
}

output "codedeploy_deployment_group_name" {
  value = aws_codedeploy_deployment_group.web.deployment_group_name
}
