variable "name" {
  description = "Name prefix, e.g. sweetdream-prod."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may deploy."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_environment" {
  description = "The GitHub environment whose jobs may assume the deploy role (protect it: main only, reviewers for prod)."
  type        = string
}

variable "create_oidc_provider" {
  description = "One GitHub OIDC provider per account: true in the first environment applied in an account, false in the others."
  type        = bool
  default     = true
}

variable "ecr_repository_arn" {
  type = string
}

variable "cluster_arn" {
  type = string
}

variable "service_arns" {
  description = "ECS services the pipeline may update."
  type        = list(string)
}

variable "task_families" {
  description = "Task definition families the pipeline registers and runs (the migration runs from the worker's)."
  type        = list(string)
}

variable "pass_role_arns" {
  description = "Task and execution roles the registered task definitions name."
  type        = list(string)
}

variable "migration_log_group_arn" {
  description = "Log group of the migration task (the worker's), read to show a failed migration."
  type        = string
}

variable "codedeploy_deployment_group_arn" {
  description = "Blue/green deployment group (empty: rolling only)."
  type        = string
  default     = ""
}

variable "codedeploy_application_arn" {
  type    = string
  default = ""
}

variable "release" {
  description = "What a release needs to know (cluster, services, network, template values): stored as one SSM parameter the pipeline reads."
  type        = any
}

variable "tags" {
  type    = map(string)
  default = {}
}
