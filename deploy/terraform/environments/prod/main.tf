# Prod: multi-AZ data stores, a NAT per AZ, web deployed blue/green by CodeDeploy
# (codedeploy.tf); the worker (no load balancer) deploys rolling.

locals {
  name = "sweetdream-prod"
}

module "kms" {
  source = "../../modules/kms"
  name   = local.name
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  cidr_block         = "10.30.0.0/16"
  azs                = ["${var.region}a", "${var.region}b"]
  single_nat_gateway = false
  logs_kms_key_arn   = module.kms.key_arn
}

module "data" {
  source                   = "../../modules/data"
  name                     = local.name
  vpc_id                   = module.network.vpc_id
  private_subnet_ids       = module.network.private_subnet_ids
  client_security_group_id = module.service.task_security_group_id
  kms_key_arn              = module.kms.key_arn
  multi_az                 = true
  deletion_protection      = true
  db_instance_class        = "db.t4g.medium"
  redis_node_type          = "cache.t4g.small"
  backup_retention_days    = 30
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

  deployment_controller              = "CODE_DEPLOY"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  secret_arns        = module.data.secret_arns
  export_bucket_name = module.data.export_bucket_name
  export_bucket_arn  = module.data.export_bucket_arn
  export_prefix      = module.data.export_prefix
  ses_identity_arns  = var.ses_identity_arns
  mail_from          = var.mail_from
  public_url         = var.public_url
  # The hook Lambda reaches the test listener from the NAT addresses; nobody else may.
  test_listener_port  = var.test_listener_port
  test_listener_cidrs = [for ip in module.network.nat_public_ips : "${ip}/32"]

  web_desired_count    = 2
  worker_desired_count = 2

  # Operations (monitoring.tf, deploy/README.md "Metrics, alarms and scaling")
  environment            = "prod"
  log_retention_days     = 30
  web_min_capacity       = 2
  web_max_capacity       = 10
  worker_min_capacity    = 2
  worker_max_capacity    = 10
  db_pool_size           = 4
  worker_db_pool_size    = 10
  db_max_connections     = module.data.db_max_connections
  enable_execute_command = var.enable_execute_command
  alb_access_logs        = true
}
