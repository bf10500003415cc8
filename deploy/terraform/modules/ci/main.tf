# The deploy role GitHub Actions assumes by OIDC (no stored keys): it may push to this
# environment's one ECR repository, register and run this environment's task families, update its
# two services, pass only its task and execution roles, start a CodeDeploy deployment on its one
# deployment group and read the migration task's logs. Nothing else.
#
# Only jobs of one GitHub environment of one repository can assume it; protect that environment
# (deployment branches: main; prod: required reviewers), see deploy/README.md.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.name
  partition    = data.aws_partition.current.partition
  github_host  = "token.actions.githubusercontent.com"
  provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
  cluster_name = element(split("/", var.cluster_arn), 1)
  blue_green   = var.codedeploy_deployment_group_arn != ""
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://${local.github_host}"
  client_id_list = ["sts.amazonaws.com"]
  # AWS no longer checks these for GitHub (it trusts the issuer's CA); older providers require the list.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = var.tags
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 0 : 1
  url   = "https://${local.github_host}"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.github_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    # A job that names an environment gets this subject; nothing else (no branch, no pull request) does.
    condition {
      test     = "StringEquals"
      variable = "${local.github_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-github-deploy"
  description          = "GitHub Actions (${var.github_repository}, environment ${var.github_environment}) deploys ${var.name}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # this action has no resource-level permissions
  }
  statement {
    sid = "EcrPushThisRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.ecr_repository_arn]
  }
  statement {
    sid       = "RegisterTaskDefinitions"
    actions   = ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition"]
    resources = ["*"] # RegisterTaskDefinition has no resource-level permissions; PassRole below limits what it can name
  }
  statement {
    sid       = "RunMigrationInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = [for f in var.task_families : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${f}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }
  statement {
    sid       = "WatchMigration"
    actions   = ["ecs:DescribeTasks"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"]
  }
  statement {
    sid       = "RollServices"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = var.service_arns
  }
  statement {
    sid       = "PassOnlyTheTaskRoles"
    actions   = ["iam:PassRole"]
    resources = var.pass_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "ReadMigrationLogs"
    actions   = ["logs:GetLogEvents", "logs:FilterLogEvents"]
    resources = ["${var.migration_log_group_arn}:*"]
  }
  statement {
    sid       = "ReadReleaseSettings"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.release.arn]
  }
  dynamic "statement" {
    for_each = local.blue_green ? [1] : []
    content {
      sid       = "BlueGreenThisGroup"
      actions   = ["codedeploy:CreateDeployment", "codedeploy:GetDeployment", "codedeploy:GetDeploymentTarget", "codedeploy:StopDeployment"]
      resources = [var.codedeploy_deployment_group_arn]
    }
  }
  dynamic "statement" {
    for_each = local.blue_green ? [1] : []
    content {
      sid       = "BlueGreenRevisionAndConfig"
      actions   = ["codedeploy:RegisterApplicationRevision", "codedeploy:GetApplicationRevision", "codedeploy:GetDeploymentConfig"]
      resources = [var.codedeploy_application_arn, "arn:${local.partition}:codedeploy:${local.region}:${local.account_id}:deploymentconfig:*"]
    }
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# The pipeline reads everything it needs from here instead of from Terraform state (which holds
# generated credentials and stays out of CI's reach).
resource "aws_ssm_parameter" "release" {
  #checkov:skip=CKV2_AWS_34:Names, ARNs and subnet ids only, no secret values; a plain String keeps the deploy role off the KMS key.
  name        = "/${var.name}/release"
  description = "Cluster, services, network and task definition values for the release pipeline"
  type        = "String"
  tier        = "Standard" # about 1.6 KB of 4
  value       = jsonencode(var.release)
  tags        = var.tags
}
