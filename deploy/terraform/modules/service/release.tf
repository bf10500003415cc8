# What the release pipeline needs from the service: settings for the task definitions, a test
# listener for CodeDeploy blue/green (the replacement task set answers on it before any shopper
# does), and the names and ARNs the deploy role and the hook are scoped to.

variable "public_url" {
  description = "The shop's address (https://...), for links in emails; the blue/green hook also calls it on the test port."
  type        = string
  validation {
    condition     = startswith(var.public_url, "https://")
    error_message = "public_url must start with https://."
  }
}

variable "payment_gateway" {
  description = "Card gateway (PAYMENT_GATEWAY); `test` is the built-in test mode."
  type        = string
  default     = "test"
}

variable "test_listener_port" {
  description = "ALB port CodeDeploy routes test traffic to (the green task set) during a blue/green release."
  type        = number
  default     = 8443
}

variable "test_listener_cidrs" {
  description = "Who may reach the test listener: the NAT addresses the hook Lambda leaves the VPC from."
  type        = list(string)
  default     = []
}

# ------------------------------------------------------------ test listener

# count, not for_each: the NAT addresses are only known after apply, their number before.
resource "aws_vpc_security_group_ingress_rule" "alb_test" {
  count             = local.blue_green ? length(var.test_listener_cidrs) : 0
  security_group_id = aws_security_group.alb.id
  description       = "Blue/green test listener, from the hook only"
  cidr_ipv4         = var.test_listener_cidrs[count.index]
  ip_protocol       = "tcp"
  from_port         = var.test_listener_port
  to_port           = var.test_listener_port
}

resource "aws_lb_listener" "test" {
  count             = local.blue_green ? 1 : 0
  load_balancer_arn = aws_lb.web.arn
  port              = var.test_listener_port
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.web["green"].arn
  }
  lifecycle {
    ignore_changes = [default_action] # CodeDeploy points it at the replacement task set
  }
}

# ------------------------------------------------------------------- outputs

output "test_listener_arn" {
  description = "Test traffic route for the CodeDeploy deployment group (null with rolling deployments)."
  value       = one(aws_lb_listener.test[*].arn)
}

output "ecr_repository_arn" {
  value = aws_ecr_repository.app.arn
}

output "cluster_arn" {
  value = aws_ecs_cluster.this.arn
}

output "service_arns" {
  value = { web = aws_ecs_service.web.id, worker = aws_ecs_service.worker.id }
}

output "task_families" {
  description = "Task definition families CI registers revisions of."
  value       = { for p, td in aws_ecs_task_definition.app : p => td.family }
}

output "pass_role_arns" {
  description = "The only roles a task definition may name: the deploy role may pass these and no others."
  value       = concat([aws_iam_role.execution.arn], [for r in aws_iam_role.task : r.arn])
}

output "log_group_arns" {
  value = { for p, g in aws_cloudwatch_log_group.app : p => g.arn }
}
