variable "name" {
  description = "Name prefix."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR block."
  type        = string
}

variable "availability_zones" {
  description = "Zones that get one public and one private subnet each."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway shared by all zones instead of one per zone."
  type        = bool
}

variable "cluster_name" {
  description = "EKS cluster name, used for the subnet discovery tags (load balancers, Karpenter)."
  type        = string
}

variable "region" {
  description = "AWS region (names the S3 gateway endpoint service)."
  type        = string
}

variable "log_retention_days" {
  description = "Days the VPC flow log group keeps its events."
  type        = number
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}
