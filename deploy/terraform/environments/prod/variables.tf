variable "region" {
  type    = string
  default = "ap-southeast-1"
}

variable "certificate_arn" {
  description = "ACM certificate (same region) for the shop's domain."
  type        = string
}

variable "image_tag" {
  description = "Image for the first task-definition revision (a git SHA already pushed to ECR)."
  type        = string
}

variable "ses_identity_arns" {
  description = "Verified SES identities the shop sends from."
  type        = list(string)
  default     = []
}

variable "mail_from" {
  type    = string
  default = "SweetDream <shop@sweetdream.example>"
}

variable "public_url" {
  description = "The shop's address, e.g. https://shop.sweetdream.example (PUBLIC_URL: links in emails; the blue/green hook calls it on the test port)."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflow deploys this environment."
  type        = string
}

variable "create_oidc_provider" {
  description = "false when another environment in this AWS account already created GitHub's OIDC provider."
  type        = bool
  default     = true
}

variable "test_listener_port" {
  description = "ALB port of the blue/green test listener."
  type        = number
  default     = 8443
}
