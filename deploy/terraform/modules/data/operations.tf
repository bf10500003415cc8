# What the service and monitoring modules need to know about the data stores: the database's
# connection limit (the pools are sized against it) and the names alarms watch.

locals {
  # RDS for PostgreSQL's default max_connections is LEAST(DBInstanceClassMemory / 9531392, 5000);
  # DBInstanceClassMemory is the class's memory less what the OS and RDS keep, so these are a little
  # under memory / 9531392 (check with SHOW max_connections after a class change).
  max_connections_by_class = {
    "db.t4g.micro"  = 80
    "db.t4g.small"  = 190
    "db.t4g.medium" = 400
    "db.t4g.large"  = 820
    "db.m7g.large"  = 820
    "db.m7g.xlarge" = 1660
  }
}

output "db_max_connections" {
  description = "The instance class's max_connections (approximate, see above)."
  value       = local.max_connections_by_class[var.db_instance_class]
}

output "db_identifier" {
  value = aws_db_instance.this.identifier
}

output "db_allocated_storage_gib" {
  value = var.db_allocated_storage
}

output "redis_replication_group_id" {
  value = aws_elasticache_replication_group.this.replication_group_id
}

output "redis_node_count" {
  value = var.multi_az ? 2 : 1
}
