# The blue/green hook: a Lambda in the VPC that calls the shop on the ALB's test listener (where
# only the replacement task set answers) and tells CodeDeploy whether to go on. Code and tests:
# deploy/hooks/smoke.py, tests/unit/test_bluegreen_hook.py.
#
# Its name starts with CodeDeployHook_ because the CodeDeploy service role's managed policy
# (AWSCodeDeployRoleForECS) may invoke only functions named so.

locals {
  hook_name = "CodeDeployHook_${local.name}-smoke"
}

data "archive_file" "hook" {
  type        = "zip"
  source_file = "${path.module}/../../../hooks/smoke.py"
  output_path = "${path.module}/.build/smoke.zip"
}

resource "aws_security_group" "hook" {
  name        = "${local.name}-bluegreen-hook"
  description = "Blue/green hook: HTTPS out only (the test listener and the CodeDeploy API, via NAT)"
  vpc_id      = module.network.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "hook_https" {
  security_group_id = aws_security_group.hook.id
  description       = "HTTPS to the ALB test listener and AWS APIs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "hook_test_listener" {
  security_group_id = aws_security_group.hook.id
  description       = "The ALB test listener"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = var.test_listener_port
  to_port           = var.test_listener_port
}

resource "aws_cloudwatch_log_group" "hook" {
  #checkov:skip=CKV_AWS_338:Hook runs are only interesting until the next release; prod logs are kept 30 days.
  name              = "/aws/lambda/${local.hook_name}"
  retention_in_days = 30
  kms_key_id        = module.kms.key_arn
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "hook" {
  name               = "${local.name}-bluegreen-hook"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "hook" {
  #checkov:skip=CKV_AWS_111:Only the Lambda VPC network-interface actions are unconstrained: they take no resource-level permissions.
  #checkov:skip=CKV_AWS_356:Same: ec2 network-interface actions for the Lambda's VPC attachment need "*".
  statement {
    sid       = "ReportToThisDeploymentGroup"
    actions   = ["codedeploy:PutLifecycleEventHookExecutionStatus"]
    resources = [aws_codedeploy_deployment_group.web.arn]
  }
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.hook.arn}:*"]
  }
  statement {
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"] # Lambda's VPC attachment: these actions take no resource-level permissions
  }
  statement {
    sid       = "EncryptedEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [module.kms.key_arn]
  }
}

resource "aws_iam_role_policy" "hook" {
  name   = "report-hook-status"
  role   = aws_iam_role.hook.id
  policy = data.aws_iam_policy_document.hook.json
}

resource "aws_lambda_function" "hook" {
  #checkov:skip=CKV_AWS_116:A failed invocation fails the hook and CodeDeploy rolls back; there is nothing to replay from a DLQ.
  #checkov:skip=CKV_AWS_272:The zip is built from this repository by Terraform itself; code signing adds a signer profile for one file.
  function_name                  = local.hook_name
  description                    = "Checks /ready, a product page and a static asset on the test listener before CodeDeploy shifts traffic"
  role                           = aws_iam_role.hook.arn
  runtime                        = "python3.12"
  handler                        = "smoke.handler"
  filename                       = data.archive_file.hook.output_path
  source_code_hash               = data.archive_file.hook.output_base64sha256
  timeout                        = 60
  memory_size                    = 128
  reserved_concurrent_executions = 2
  kms_key_arn                    = module.kms.key_arn
  environment {
    variables = {
      TEST_BASE_URL = "${trimsuffix(var.public_url, "/")}:${var.test_listener_port}"
      PRODUCTS_PATH = "/products"
      STATIC_PATH   = "/static/css/app.css"
    }
  }
  vpc_config {
    subnet_ids         = module.network.private_subnet_ids
    security_group_ids = [aws_security_group.hook.id]
  }
  tracing_config {
    mode = "PassThrough"
  }
  depends_on = [aws_iam_role_policy.hook, aws_cloudwatch_log_group.hook]
}

output "bluegreen_hook_function_name" {
  description = "Named in deploy/codedeploy/appspec.yaml (Hooks)."
  value       = aws_lambda_function.hook.function_name
}
