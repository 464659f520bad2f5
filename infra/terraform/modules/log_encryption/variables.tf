variable "name" {
  description = "Name prefix of the key alias (alias/<name>-logs)."
  type        = string
}

variable "region" {
  description = "AWS region whose CloudWatch Logs service may use the key."
  type        = string
}
