output "secret_arns" {
  description = "Secrets Manager ARNs keyed by the environment variable they fill."
  value       = { for k, s in aws_secretsmanager_secret.app : k => s.arn }
}

output "export_bucket_name" {
  value = aws_s3_bucket.exports.bucket
}

output "export_bucket_arn" {
  value = aws_s3_bucket.exports.arn
}

output "db_address" {
  value = aws_db_instance.this.address
}

output "redis_address" {
  value = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "export_prefix" {
  description = "Where the nightly export writes in the export bucket (the worker may write only there)."
  value       = local.export_prefix
}

output "analytics_database" {
  value = aws_glue_catalog_database.analytics.name
}

output "athena_workgroup" {
  value = aws_athena_workgroup.analytics.name
}
