variable "name" {
  description = "Name prefix, e.g. sweetdream-prod."
  type        = string
}

variable "cidr_block" {
  description = "VPC CIDR; subnets are /24s carved from it."
  type        = string
  default     = "10.20.0.0/16"
}

variable "azs" {
  description = "The two availability zones to use, e.g. [\"ap-southeast-1a\", \"ap-southeast-1b\"]."
  type        = list(string)
  validation {
    condition     = length(var.azs) == 2
    error_message = "azs must name exactly two availability zones."
  }
}

variable "single_nat_gateway" {
  description = "true: one NAT for both private subnets (cheap, dev); false: one NAT per AZ (prod)."
  type        = bool
  default     = false
}

variable "logs_kms_key_arn" {
  description = "KMS key for the flow-log group."
  type        = string
}

variable "log_retention_days" {
  type    = number
  default = 365
}

variable "tags" {
  type    = map(string)
  default = {}
}
