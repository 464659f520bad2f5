variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes version."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane ENIs and the system nodes."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Expose the API endpoint publicly (the private endpoint is always on)."
  type        = bool
}

variable "endpoint_public_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint (validated at the root: never empty when public, never /0)."
  type        = list(string)
}

variable "service_cidr" {
  description = "Kubernetes Service CIDR; its first address is the in-cluster API server (default/kubernetes)."
  type        = string
}

variable "log_retention_days" {
  description = "Days the control-plane log group keeps its events."
  type        = number
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the control-plane log group."
  type        = string
}

variable "admin_principal_arns" {
  description = "IAM principals that get cluster-admin access entries."
  type        = list(string)
}

variable "system_node_group" {
  description = "Size of the CPU system node group."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gb   = number
  })
}
