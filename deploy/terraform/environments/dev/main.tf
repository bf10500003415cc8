# Dev: small, single-AZ data stores, one NAT, rolling ECS deployments with circuit-breaker rollback.

locals {
  name = "sweetdream-dev"
}

module "kms" {
  source = "../../modules/kms"
  name   = local.name
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  cidr_block         = "10.20.0.0/16"
  azs                = ["${var.region}a", "${var.region}b"]
  single_nat_gateway = true
  logs_kms_key_arn   = module.kms.key_arn
}

module "data" {
  source                   = "../../modules/data"
  name                     = local.name
  vpc_id                   = module.network.vpc_id
  private_subnet_ids       = module.network.private_subnet_ids
  client_security_group_id = module.service.task_security_group_id
  kms_key_arn              = module.kms.key_arn
  multi_az                 = false
  deletion_protection      = false
  db_instance_class        = "db.t4g.micro"
  redis_node_type          = "cache.t4g.micro"
  backup_retention_days    = 7
}

module "service" {
  source             = "../../modules/service"
  name               = local.name
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  public_subnet_ids  = module.network.public_subnet_ids
  private_subnet_ids = module.network.private_subnet_ids
  kms_key_arn        = module.kms.key_arn
  certificate_arn    = var.certificate_arn
  image_tag          = var.image_tag

  # Rolling deployment: keep half the tasks up, start up to double, roll back on failure.
  deployment_controller              = "ECS"
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200

  secret_arns        = module.data.secret_arns
  export_bucket_name = module.data.export_bucket_name
  export_bucket_arn  = module.data.export_bucket_arn
  export_prefix      = module.data.export_prefix
  ses_identity_arns  = var.ses_identity_arns
  mail_from          = var.mail_from
  public_url         = var.public_url
  log_level          = "DEBUG"

  web_desired_count       = 1
  worker_desired_count    = 1
  alb_deletion_protection = false

  # Operations (monitoring.tf, deploy/README.md "Metrics, alarms and scaling")
  environment            = "dev"
  log_retention_days     = 7
  web_min_capacity       = 1
  web_max_capacity       = 3
  worker_min_capacity    = 1
  worker_max_capacity    = 3
  db_pool_size           = 2
  worker_db_pool_size    = 4
  db_max_connections     = module.data.db_max_connections
  enable_execute_command = true
  alb_access_logs        = false
}
