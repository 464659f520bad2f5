variable "name" {
  description = "Identifier prefix."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (at least two zones)."
  type        = list(string)
}

variable "client_security_groups" {
  description = "Name -> security group allowed to connect on 5432 (the EKS cluster security group, which managed nodes carry). Keys are static so the plan knows them before the groups exist."
  type        = map(string)
}

variable "settings" {
  description = "Instance settings."
  type = object({
    instance_class        = string
    engine_version        = string
    allocated_storage_gb  = number
    max_allocated_storage = number
    multi_az              = bool
    backup_retention_days = number
    deletion_protection   = bool
    skip_final_snapshot   = bool
    performance_insights  = bool
    monitoring_interval   = number
  })
}

variable "log_retention_days" {
  description = "Days the exported database log groups keep their events."
  type        = number
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the exported database log groups."
  type        = string
}
