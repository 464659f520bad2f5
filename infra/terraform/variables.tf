variable "environment" {
  description = "Environment name (dev, prod); prefixes every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "availability_zones" {
  description = "Availability zones for the private subnets (at least two: EKS and RDS need two)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; subnets are carved out of it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (zone-failure tolerant)."
  type        = bool
  default     = true
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access" {
  description = <<-EOT
    Also expose the EKS API endpoint publicly, to cluster_endpoint_public_cidrs only. The
    private endpoint is always on (nodes, and people on the VPC through a VPN, a peered
    network or SSM). Default false: the API is reachable from inside the VPC only.
  EOT
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_cidrs" {
  description = <<-EOT
    CIDR blocks allowed to reach the public EKS API endpoint, e.g. an office or VPN range
    or one developer's address as a /32. Required when cluster_endpoint_public_access is
    true; 0.0.0.0/0 (or any /0) is rejected: it would open the API to the internet.
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "cluster_endpoint_public_cidrs must be CIDR blocks narrower than /0 (0.0.0.0/0 opens the API to the internet)."
  }

  # AWS turns an empty list into 0.0.0.0/0 when the public endpoint is on.
  validation {
    condition     = !var.cluster_endpoint_public_access || length(var.cluster_endpoint_public_cidrs) > 0
    error_message = "A public API endpoint needs cluster_endpoint_public_cidrs (AWS would otherwise open it to 0.0.0.0/0)."
  }
}

variable "service_cidr" {
  description = "Kubernetes Service CIDR (EKS's default for a 10.x VPC); the NetworkPolicies allow its first address, the in-cluster API server."
  type        = string
  default     = "172.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.service_cidr, 1))
    error_message = "service_cidr must be a CIDR block."
  }
}

variable "log_retention_days" {
  description = "Days the CloudWatch log groups (EKS control plane, VPC flow logs, RDS) keep their events; 365 or more for an audit trail."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, ...)."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM role/user ARNs that get cluster-admin through EKS access entries (the creator gets it anyway)."
  type        = list(string)
  default     = []
}

variable "system_node_group" {
  description = "CPU node group for system pods, MLflow and the CPU pipeline stages."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gb   = number
  })
  default = {
    instance_types = ["m6i.xlarge"]
    min_size       = 2
    max_size       = 4
    desired_size   = 2
    disk_size_gb   = 100
  }
}

variable "gpu_node_groups" {
  description = <<-EOT
    GPU node groups by name. Each becomes an EKS managed node group on the AL2023 NVIDIA AMI
    with the nvidia.com/gpu NoSchedule taint and the pipeline's pool label. min_size 0 lets
    an autoscaler scale a pool to zero when no GPU stage runs.
  EOT
  type = map(object({
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = optional(number, 0)
    max_size       = number
    desired_size   = optional(number, 0)
    disk_size_gb   = optional(number, 500)
    disk_iops      = optional(number, 6000)
    disk_mbps      = optional(number, 500)
  }))

  validation {
    condition     = length(var.gpu_node_groups) >= 1
    error_message = "Define at least one GPU node group."
  }

  validation {
    condition = alltrue([
      for g in values(var.gpu_node_groups) :
      g.min_size >= 0 && g.min_size <= g.desired_size && g.desired_size <= g.max_size && g.max_size >= 1
    ])
    error_message = "Each GPU node group needs 0 <= min_size <= desired_size <= max_size and max_size >= 1."
  }

  validation {
    condition     = alltrue([for g in values(var.gpu_node_groups) : contains(["ON_DEMAND", "SPOT"], g.capacity_type)])
    error_message = "capacity_type must be ON_DEMAND or SPOT."
  }

  validation {
    condition     = alltrue([for g in values(var.gpu_node_groups) : g.disk_size_gb >= 200])
    error_message = "GPU nodes need a root volume of at least 200 GiB (images with CUDA and model weights are large)."
  }
}

variable "gpu_pool_label" {
  description = "Node label (key and value) that GPU nodes carry; must equal the pipeline's pipeline.gpu_node_selector."
  type        = map(string)
  default     = { "miva.ai/pool" = "gpu" }

  validation {
    condition     = length(var.gpu_pool_label) == 1
    error_message = "gpu_pool_label holds exactly one key/value pair."
  }
}

variable "artifact_bucket_name" {
  description = "Name of the S3 artifact bucket; empty means miva-<environment>-artifacts-<account id>."
  type        = string
  default     = ""
}

variable "artifact_bucket_force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket (dev only)."
  type        = bool
  default     = false
}

variable "pipeline_root_prefix" {
  description = "Key prefix of the KFP pipeline root inside the artifact bucket."
  type        = string
  default     = "pipeline-root"
}

variable "pipeline_root_expiration_days" {
  description = "Delete intermediate pipeline artifacts under the pipeline root after this many days (0 keeps them)."
  type        = number
  default     = 30
}

variable "noncurrent_version_expiration_days" {
  description = "Delete overwritten (noncurrent) object versions after this many days."
  type        = number
  default     = 30
}

variable "ecr_namespace" {
  description = "ECR repository namespace; images are <registry>/<namespace>/<image>."
  type        = string
  default     = "miva"
}

variable "ecr_images" {
  description = "Stage images that get an ECR repository."
  type        = list(string)
  default     = ["miva-base", "miva-gpu"]
}

variable "ecr_image_tag_mutability" {
  description = "MUTABLE or IMMUTABLE image tags."
  type        = string
  default     = "IMMUTABLE"
}

variable "ecr_keep_images" {
  description = "Number of images each repository keeps (older ones expire)."
  type        = number
  default     = 30
}

variable "image_tag" {
  description = <<-EOT
    Tag of the stage images the k8s manifests run (MLflow uses miva-base, the Trainer
    runtime miva-gpu), as `make images` wrote it to images/tags.env; infra/scripts/
    terraform.sh passes it. Empty: the overlay gets a placeholder that the manifest check
    rejects. "latest" is rejected: a deployment must name one build.
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.image_tag != "latest"
    error_message = "image_tag must name one build (make images writes <version>-<commit>), not latest."
  }
}

variable "image_digests" {
  description = "Image name (miva-base, miva-gpu) -> sha256 digest of image_tag, as `make images` recorded it; the manifests then pin tag and digest."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for d in values(var.image_digests) : can(regex("^sha256:[0-9a-f]{64}$", d))])
    error_message = "image_digests values must be sha256:<64 hex digits>."
  }
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete repositories that still hold images (dev only)."
  type        = bool
  default     = false
}

variable "mlflow_db" {
  description = "RDS PostgreSQL instance for the MLflow backend store."
  type = object({
    instance_class        = string
    engine_version        = string
    allocated_storage_gb  = number
    max_allocated_storage = number
    multi_az              = bool
    backup_retention_days = number
    deletion_protection   = bool
    skip_final_snapshot   = bool
    # Performance Insights (query-level load, encrypted with its own key) and enhanced
    # monitoring (OS metrics every N seconds: 0 off, or 1, 5, 10, 15, 30, 60).
    performance_insights = optional(bool, true)
    monitoring_interval  = optional(number, 60)
  })
  default = {
    instance_class        = "db.t4g.small"
    engine_version        = "16"
    allocated_storage_gb  = 20
    max_allocated_storage = 100
    multi_az              = false
    backup_retention_days = 7
    deletion_protection   = true
    skip_final_snapshot   = false
  }

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.mlflow_db.monitoring_interval)
    error_message = "mlflow_db.monitoring_interval must be 0, 1, 5, 10, 15, 30 or 60."
  }
}

variable "pipeline_namespace" {
  description = "Kubernetes namespace where KFP runs the pipeline pods."
  type        = string
  default     = "kubeflow"
}

variable "pipeline_service_account" {
  description = "Kubernetes service account of the pipeline pods (gets the S3 role through EKS Pod Identity)."
  type        = string
  default     = "miva-pipeline"
}

variable "mlflow_namespace" {
  description = "Kubernetes namespace of the MLflow server."
  type        = string
  default     = "miva"
}

variable "mlflow_service_account" {
  description = "Kubernetes service account of the MLflow server."
  type        = string
  default     = "mlflow"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
