# The GitHub Actions deploy role for this environment (modules/ci) and what a release reads.

module "ci" {
  source               = "../../modules/ci"
  name                 = local.name
  github_repository    = var.github_repository
  github_environment   = "dev"
  create_oidc_provider = var.create_oidc_provider

  ecr_repository_arn      = module.service.ecr_repository_arn
  cluster_arn             = module.service.cluster_arn
  service_arns            = values(module.service.service_arns)
  task_families           = values(module.service.task_families)
  pass_role_arns          = module.service.pass_role_arns
  migration_log_group_arn = module.service.log_group_arns["worker"]

  release = {
    ecr_repository_url = module.service.ecr_repository_url
    cluster            = module.service.cluster_name
    web_service        = module.service.web_service_name
    worker_service     = module.service.worker_service_name
    subnets            = module.network.private_subnet_ids
    security_group     = module.service.task_security_group_id
    template_vars      = module.service.task_template_vars
  }
}

output "deploy_role_arn" {
  description = "GitHub environment `dev`, variable AWS_DEPLOY_ROLE_ARN."
  value       = module.ci.deploy_role_arn
}

output "release_parameter_name" {
  description = "GitHub environment `dev`, variable RELEASE_PARAMETER."
  value       = module.ci.release_parameter_name
}
