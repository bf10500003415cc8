# ECR, ECS cluster, Fargate web + worker services (one image), ALB with HTTPS and a blue/green
# target-group pair, security groups, log groups and least-privilege IAM.
#
# Task definitions are rendered from deploy/ecs/*.json, the same templates CI registers new
# revisions from. Terraform creates the first revision; releases (CI) register later ones, so
# the services ignore task_definition drift (and load_balancer, which CodeDeploy swaps).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  processes  = toset(["web", "worker"])
  blue_green = var.deployment_controller == "CODE_DEPLOY"

  # Values for the deploy/ecs/*.json placeholders (IMAGE is added per release).
  template_vars = {
    common = {
      APP_NAME           = var.name
      AWS_REGION         = local.region
      EXECUTION_ROLE_ARN = aws_iam_role.execution.arn
      SECRET_KEY_ARN     = var.secret_arns["SECRET_KEY"]
      DATABASE_URL_ARN   = var.secret_arns["DATABASE_URL"]
      REDIS_URL_ARN      = var.secret_arns["REDIS_URL"]
      S3_BUCKET          = var.export_bucket_name
      MAIL_BACKEND       = var.mail_backend
      MAIL_FROM          = var.mail_from
      PUBLIC_URL         = var.public_url
      PAYMENT_GATEWAY    = var.payment_gateway
      LOG_LEVEL          = var.log_level
      DB_POOL_SIZE       = tostring(var.db_pool_size)
      WEB_CONCURRENCY    = tostring(var.web_concurrency)
      CW_AGENT_IMAGE     = var.cloudwatch_agent_image # observability.tf: the metrics sidecar
    }
    web = {
      CPU           = tostring(var.web_cpu)
      MEMORY        = tostring(var.web_memory)
      TASK_ROLE_ARN = aws_iam_role.task["web"].arn
      LOG_GROUP     = aws_cloudwatch_log_group.app["web"].name
      # One proxy, the ALB, stands between shoppers and the web tasks (only it may reach port
      # 8000: see web_from_alb). Rate limits count the address it saw, never a client's claim.
      TRUST_PROXY_HOPS = "1"
      # observability.tf: the agent's config in SSM Parameter Store
      CW_AGENT_CONFIG_ARN   = aws_ssm_parameter.agent_config["web"].arn
      PROMETHEUS_CONFIG_ARN = aws_ssm_parameter.prometheus_config["web"].arn
    }
    worker = {
      CPU           = tostring(var.worker_cpu)
      MEMORY        = tostring(var.worker_memory)
      TASK_ROLE_ARN = aws_iam_role.task["worker"].arn
      LOG_GROUP     = aws_cloudwatch_log_group.app["worker"].name
      # Connection budget and metrics (observability.tf, deploy/README.md)
      WORKER_DB_POOL_SIZE   = tostring(var.worker_db_pool_size)
      WORKER_METRICS_PORT   = tostring(local.worker_metrics_port)
      CW_AGENT_CONFIG_ARN   = aws_ssm_parameter.agent_config["worker"].arn
      PROMETHEUS_CONFIG_ARN = aws_ssm_parameter.prometheus_config["worker"].arn
    }
  }
  image = "${aws_ecr_repository.app.repository_url}:${var.image_tag}"
  task_definitions = {
    for p in local.processes : p => jsondecode(templatefile(
      "${path.module}/../../../ecs/${p}.json",
      merge(local.template_vars.common, local.template_vars[p], { IMAGE = local.image })
    ))
  }
}

# ------------------------------------------------------------------- registry

resource "aws_ecr_repository" "app" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE" # deploy by git SHA; a tag always means one image
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "app" {
  repository = aws_ecr_repository.app.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest 50 images (rollback targets)"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 50 }
      action       = { type = "expire" }
    }]
  })
}

# -------------------------------------------------------------------- cluster

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  # ECS Exec sessions (exec.tf) are encrypted with the environment's key and logged.
  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
        cloud_watch_encryption_enabled = true
      }
    }
  }
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "app" {
  for_each          = local.processes
  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# ------------------------------------------------------------ security groups

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public HTTPS entry point"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers with a 301 redirect to HTTPS.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from the internet (redirected to HTTPS)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_web" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To web tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "Web, worker and release tasks"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "web_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (ECR, Secrets Manager, S3, SES, logs) via NAT"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "tasks_data" {
  for_each          = { postgres = 5432, redis = 6379 }
  security_group_id = aws_security_group.tasks.id
  description       = "${each.key} inside the VPC"
  cidr_ipv4         = var.vpc_cidr_block
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

# ------------------------------------------------------------------------ ALB

resource "aws_lb" "web" {
  #checkov:skip=CKV_AWS_91:Access logs are on in prod (alb_access_logs, access_logs.tf); dev relies on the app's request log (LOG_JSON).
  #checkov:skip=CKV2_AWS_76:Log4JRCE is blocked by KnownBadInputs (waf.tf); the AnonymousIpList group this check also wants would block shoppers on VPNs and the blue/green hook, which calls from AWS NAT addresses.
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  # The ALB appends the address it saw to X-Forwarded-For (after anything the client sent): the
  # web tasks believe that last entry only (TRUST_PROXY_HOPS = 1 in the web task definition).
  xff_header_processing_mode = "append"
  enable_deletion_protection = var.alb_deletion_protection
  dynamic "access_logs" {
    for_each = var.alb_access_logs ? [1] : []
    content {
      bucket  = aws_s3_bucket_policy.alb_logs[0].bucket # after the policy that lets the ALB write
      prefix  = "alb"
      enabled = true
    }
  }
  tags = var.tags
}

# Two target groups: blue serves traffic, green receives the replacement task set during a
# CodeDeploy blue/green release (then they swap roles). A rolling deployment only uses blue.
resource "aws_lb_target_group" "web" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ALB-to-task traffic stays in private subnets.
  for_each             = toset(["blue", "green"])
  name                 = "${var.name}-${each.key}"
  port                 = 8000
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    # Process up. Not /ready: during a database or Redis failover every task would fail it at
    # once and be replaced for nothing. /ready is checked by the blue/green hook before traffic moves,
    # and patiently (5 x 30 s) by the container health check (deploy/ecs/web.json).
    path                = "/health"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  tags = var.tags
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.web.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.web.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web["blue"].arn
  }
  lifecycle {
    ignore_changes = [default_action] # CodeDeploy points it at blue or green
  }
}

# ------------------------------------------------------------------------ IAM

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# Execution role: what ECS itself needs to start a task (pull, log, inject secrets).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # this action has no resource-level permissions
  }
  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.app.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.app : "${g.arn}:*"]
  }
  statement {
    sid       = "AppSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(var.secret_arns)
  }
  statement {
    sid       = "DecryptSecretsAndLayers"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-tasks"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task roles: what the app code may call. Both send mail; only the worker writes exports.
resource "aws_iam_role" "task" {
  for_each           = local.processes
  name               = "${var.name}-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "send_mail" {
  statement {
    actions   = ["ses:SendEmail", "ses:SendRawEmail"]
    resources = var.ses_identity_arns
  }
}

resource "aws_iam_role_policy" "send_mail" {
  for_each = length(var.ses_identity_arns) > 0 ? local.processes : toset([])
  name     = "ses-send"
  role     = aws_iam_role.task[each.key].id
  policy   = data.aws_iam_policy_document.send_mail.json
}

# The nightly export writes, rewrites (idempotent reruns) and tidies user-actions/ and nothing else.
data "aws_iam_policy_document" "export" {
  statement {
    sid       = "WriteExports"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = ["${var.export_bucket_arn}/${var.export_prefix}*"]
  }
  statement {
    sid       = "ListExports"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.export_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.export_prefix}*"]
    }
  }
  statement {
    sid       = "EncryptExports"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "export" {
  name   = "s3-export"
  role   = aws_iam_role.task["worker"].id
  policy = data.aws_iam_policy_document.export.json
}

# Product images live under media/ in the same bucket: the web app signs browsers' uploads there
# (a presigned POST carries the signer's permission) and checks what arrived; the worker reads an
# original and writes its thumbnail next to it. Nothing else of the bucket.
data "aws_iam_policy_document" "media" {
  statement {
    sid       = "ProductImages"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${var.export_bucket_arn}/media/*"]
  }
  # An upload by the admin's plain form (no JavaScript) lands under media/incoming/: the app moves it
  # to its own key once its type is read, or deletes it if it is refused.
  statement {
    sid       = "PlainFormUploads"
    actions   = ["s3:DeleteObject"]
    resources = ["${var.export_bucket_arn}/media/incoming/*"]
  }
  statement {
    sid       = "EncryptImages"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "media" {
  for_each = local.processes
  name     = "s3-media"
  role     = aws_iam_role.task[each.key].id
  policy   = data.aws_iam_policy_document.media.json
}

# ------------------------------------------------------------------- services

resource "aws_ecs_task_definition" "app" {
  for_each                 = local.task_definitions
  family                   = each.value.family
  requires_compatibilities = each.value.requiresCompatibilities
  network_mode             = each.value.networkMode
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = each.value.executionRoleArn
  task_role_arn            = each.value.taskRoleArn
  container_definitions    = jsonencode(each.value.containerDefinitions)
  # Empty per-task volumes for the paths the app writes (/tmp, /app/var): the root filesystem is read-only.
  dynamic "volume" {
    for_each = lookup(each.value, "volumes", [])
    content {
      name = volume.value.name
    }
  }
  runtime_platform {
    operating_system_family = each.value.runtimePlatform.operatingSystemFamily
    cpu_architecture        = each.value.runtimePlatform.cpuArchitecture
  }
  tags = var.tags
}

resource "aws_ecs_service" "web" {
  name                              = "web"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.app["web"].arn
  desired_count                     = var.web_desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = 60

  deployment_controller {
    type = var.deployment_controller
  }
  deployment_minimum_healthy_percent = var.deployment_minimum_healthy_percent
  deployment_maximum_percent         = var.deployment_maximum_percent
  dynamic "deployment_circuit_breaker" {
    for_each = local.blue_green ? [] : [1] # CodeDeploy does its own rollback
    content {
      enable   = true
      rollback = true
    }
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.web["blue"].arn
    container_name   = "web"
    container_port   = 8000
  }

  enable_execute_command = var.enable_execute_command

  lifecycle {
    # desired_count belongs to autoscaling (autoscaling.tf) once the service exists.
    ignore_changes = [task_definition, load_balancer, desired_count]
  }
  depends_on = [aws_lb_listener.https]
  tags       = var.tags
}

# The worker has no load balancer, so it always deploys rolling: start the new task first,
# then SIGTERM the old one, which has stopTimeout (120 s) to finish its current job.
resource "aws_ecs_service" "worker" {
  name             = "worker"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.app["worker"].arn
  desired_count    = var.worker_desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  deployment_controller {
    type = "ECS"
  }
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  enable_execute_command = var.enable_execute_command

  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }
  tags = var.tags
}
