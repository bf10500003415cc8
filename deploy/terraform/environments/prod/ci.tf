# The GitHub Actions deploy role for this environment (modules/ci) and what a release reads.

module "ci" {
  source               = "../../modules/ci"
  name                 = local.name
  github_repository    = var.github_repository
  github_environment   = "production"
  create_oidc_provider = var.create_oidc_provider

  ecr_repository_arn              = module.service.ecr_repository_arn
  cluster_arn                     = module.service.cluster_arn
  service_arns                    = values(module.service.service_arns)
  task_families                   = values(module.service.task_families)
  pass_role_arns                  = module.service.pass_role_arns
  migration_log_group_arn         = module.service.log_group_arns["worker"]
  codedeploy_application_arn      = aws_codedeploy_app.web.arn
  codedeploy_deployment_group_arn = aws_codedeploy_deployment_group.web.arn

  release = {
    ecr_repository_url = module.service.ecr_repository_url
    cluster            = module.service.cluster_name
    web_service        = module.service.web_service_name
    worker_service     = module.service.worker_service_name
    subnets            = module.network.private_subnet_ids
    security_group     = module.service.task_security_group_id
    template_vars      = module.service.task_template_vars
    codedeploy_app     = aws_codedeploy_app.web.name
    codedeploy_group   = aws_codedeploy_deployment_group.web.deployment_group_name
    hook_function      = aws_lambda_function.hook.function_name
  }
}

output "deploy_role_arn" {
  description = "GitHub environment `production`, variable AWS_DEPLOY_ROLE_ARN."
  value       = module.ci.deploy_role_arn
}

output "release_parameter_name" {
  description = "GitHub environment `production`, variable RELEASE_PARAMETER."
  value       = module.ci.release_parameter_name
}
