output "deploy_role_arn" {
  description = "Put into the GitHub environment's variable AWS_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.deploy.arn
}

output "release_parameter_name" {
  description = "Put into the GitHub environment's variable RELEASE_PARAMETER."
  value       = aws_ssm_parameter.release.name
}
