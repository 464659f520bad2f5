output "bucket_name" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "ARN of the key that encrypts the bucket."
  value       = aws_kms_key.this.arn
}

output "pipeline_root" {
  description = "s3:// URI of the KFP pipeline root."
  value       = "s3://${aws_s3_bucket.this.bucket}/${var.pipeline_root_prefix}"
}

output "security" {
  description = "The bucket's protection settings, as applied (asserted by the terraform tests)."
  value = {
    versioning          = aws_s3_bucket_versioning.this.versioning_configuration[0].status
    sse_algorithm       = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule[*].apply_server_side_encryption_by_default[*].sse_algorithm))
    sse_kms_key         = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule[*].apply_server_side_encryption_by_default[*].kms_master_key_id))
    block_public_acls   = aws_s3_bucket_public_access_block.this.block_public_acls
    block_public_policy = aws_s3_bucket_public_access_block.this.block_public_policy
    ignore_public_acls  = aws_s3_bucket_public_access_block.this.ignore_public_acls
    restrict_public     = aws_s3_bucket_public_access_block.this.restrict_public_buckets
    object_ownership    = one(aws_s3_bucket_ownership_controls.this.rule[*].object_ownership)
    bucket_policy       = aws_s3_bucket_policy.tls_only.policy
    lifecycle_rule_ids  = [for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id]
    abort_incomplete_multipart = [for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
      status = r.status
      days   = one(r.abort_incomplete_multipart_upload[*].days_after_initiation)
      prefix = one(r.filter[*].prefix)
    } if length(r.abort_incomplete_multipart_upload) > 0]
    kms_key_policy = aws_kms_key.this.policy
  }
}
