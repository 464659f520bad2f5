output "key_arn" {
  description = "ARN of the CloudWatch Logs key."
  value       = aws_kms_key.this.arn
}

output "key_policy" {
  description = "The key policy (JSON), for the terraform tests."
  value       = aws_kms_key.this.policy
}
