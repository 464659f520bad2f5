variable "name" {
  description = "IAM role name."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster name."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the service account."
  type        = string
}

variable "service_account" {
  description = "Kubernetes service account that receives the role."
  type        = string
}

variable "policy_json" {
  description = "Inline IAM policy (JSON) of the role: the only permissions it gets."
  type        = string
}
