output "repository_urls" {
  description = "Image name -> repository URL."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.repository_url }
}

output "repository_names" {
  description = "Image name -> repository name."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.name }
}

output "encryption" {
  description = "Image name -> encryption type and key, as applied (asserted by the terraform tests)."
  value = { for name, repo in aws_ecr_repository.this : name => {
    type    = repo.encryption_configuration[0].encryption_type
    kms_key = repo.encryption_configuration[0].kms_key
  } }
}

output "kms_key_arn" {
  description = "ARN of the key that encrypts the repositories."
  value       = aws_kms_key.this.arn
}
