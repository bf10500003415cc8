output "key_arn" {
  value = aws_kms_key.this.arn
}
