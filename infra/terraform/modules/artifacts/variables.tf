variable "bucket_name" {
  description = "Bucket name (globally unique)."
  type        = string
}

variable "force_destroy" {
  description = "Allow deleting a non-empty bucket."
  type        = bool
}

variable "pipeline_root_prefix" {
  description = "Key prefix of the KFP pipeline root."
  type        = string
}

variable "pipeline_root_expiration_days" {
  description = "Expire pipeline-root objects after this many days (0 keeps them)."
  type        = number
}

variable "noncurrent_version_expiration_days" {
  description = "Expire noncurrent versions after this many days."
  type        = number
}

variable "abort_incomplete_multipart_days" {
  description = "Abort multipart uploads that have not completed this many days after they started."
  type        = number
  default     = 7
}
