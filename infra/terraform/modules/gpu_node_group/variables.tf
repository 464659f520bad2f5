variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}

variable "name" {
  description = "Node group name (e.g. h100, a100, l40s)."
  type        = string
}

variable "node_role_arn" {
  description = "IAM role of the nodes."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the nodes may land in."
  type        = list(string)
}

variable "instance_types" {
  description = "GPU instance types (p5.48xlarge, p4d.24xlarge, g6e.12xlarge, ...)."
  type        = list(string)
}

variable "capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
}

variable "min_size" {
  description = "Minimum nodes (0 lets the pool scale to zero)."
  type        = number
}

variable "max_size" {
  description = "Maximum nodes."
  type        = number
}

variable "desired_size" {
  description = "Initial nodes (later changes are left to the autoscaler)."
  type        = number
}

variable "disk_size_gb" {
  description = "Root volume size (container images with CUDA, model weights, checkpoints)."
  type        = number
}

variable "disk_iops" {
  description = "gp3 provisioned IOPS of the root volume."
  type        = number
}

variable "disk_mbps" {
  description = "gp3 provisioned throughput (MiB/s) of the root volume."
  type        = number
}

variable "pool_label" {
  description = "The label the pipeline's GPU node selector matches, e.g. {\"miva.ai/pool\" = \"gpu\"}."
  type        = map(string)
}
