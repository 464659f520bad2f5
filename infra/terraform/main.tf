# MIVA on AWS: network, EKS with a CPU system pool and GPU pools, the artifact bucket, ECR
# repositories for the stage images, PostgreSQL for MLflow, and Pod Identity roles for the
# pipeline and the MLflow server. Everything is plain aws_* resources in ./modules.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name         = "miva-${var.environment}"
  cluster_name = "miva-${var.environment}"
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  bucket_name  = var.artifact_bucket_name != "" ? var.artifact_bucket_name : "miva-${var.environment}-artifacts-${local.account_id}"
  # MLflow stores its artifacts under this prefix of the artifact bucket.
  mlflow_artifact_prefix = "mlflow"
}

# One KMS key for all CloudWatch log groups of the stack.
module "log_encryption" {
  source = "./modules/log_encryption"
  name   = local.name
  region = var.region
}

module "network" {
  source             = "./modules/network"
  name               = local.name
  cidr               = var.vpc_cidr
  region             = var.region
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  cluster_name       = local.cluster_name
  log_retention_days = var.log_retention_days
  log_kms_key_arn    = module.log_encryption.key_arn
}

module "eks" {
  source                 = "./modules/eks"
  cluster_name           = local.cluster_name
  kubernetes_version     = var.kubernetes_version
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = var.cluster_endpoint_public_access
  endpoint_public_cidrs  = var.cluster_endpoint_public_cidrs
  service_cidr           = var.service_cidr
  admin_principal_arns   = var.cluster_admin_principal_arns
  system_node_group      = var.system_node_group
  log_retention_days     = var.log_retention_days
  log_kms_key_arn        = module.log_encryption.key_arn
}

module "gpu_node_group" {
  source   = "./modules/gpu_node_group"
  for_each = var.gpu_node_groups

  cluster_name   = module.eks.cluster_name
  name           = each.key
  node_role_arn  = module.eks.node_role_arn
  subnet_ids     = module.network.private_subnet_ids
  instance_types = each.value.instance_types
  capacity_type  = each.value.capacity_type
  min_size       = each.value.min_size
  max_size       = each.value.max_size
  desired_size   = each.value.desired_size
  disk_size_gb   = each.value.disk_size_gb
  disk_iops      = each.value.disk_iops
  disk_mbps      = each.value.disk_mbps
  pool_label     = var.gpu_pool_label

  # GPU nodes join after the CNI and the Pod Identity agent exist.
  depends_on = [module.eks]
}

module "artifacts" {
  source                             = "./modules/artifacts"
  bucket_name                        = local.bucket_name
  force_destroy                      = var.artifact_bucket_force_destroy
  pipeline_root_prefix               = var.pipeline_root_prefix
  pipeline_root_expiration_days      = var.pipeline_root_expiration_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

module "ecr" {
  source               = "./modules/ecr"
  namespace            = var.ecr_namespace
  images               = var.ecr_images
  image_tag_mutability = var.ecr_image_tag_mutability
  keep_images          = var.ecr_keep_images
  force_delete         = var.ecr_force_delete
}

module "mlflow_db" {
  source                 = "./modules/mlflow_db"
  name                   = local.name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  client_security_groups = { eks-cluster = module.eks.cluster_security_group_id }
  settings               = var.mlflow_db
  log_retention_days     = var.log_retention_days
  log_kms_key_arn        = module.log_encryption.key_arn
}

# ------------------------------------------------------------------ workload identities

locals {
  bucket_arn  = module.artifacts.bucket_arn
  kms_key_arn = module.artifacts.kms_key_arn

  # The pipeline reads and writes objects in its bucket and nothing else: no bucket
  # administration (policy, ACL, deletion), no other bucket, only its own KMS key.
  pipeline_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListArtifactBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
        Resource = [local.bucket_arn]
      },
      {
        Sid    = "ReadWriteArtifacts"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = ["${local.bucket_arn}/*"]
      },
      {
        Sid      = "UseArtifactKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [local.kms_key_arn]
      },
    ]
  }

  # The MLflow server proxies artifact traffic under mlflow/ and reads its own DB secret.
  mlflow_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListMlflowPrefix"
        Effect    = "Allow"
        Action    = ["s3:ListBucket", "s3:GetBucketLocation"]
        Resource  = [local.bucket_arn]
        Condition = { StringLike = { "s3:prefix" = ["${local.mlflow_artifact_prefix}/*", local.mlflow_artifact_prefix] } }
      },
      {
        Sid      = "ReadWriteMlflowArtifacts"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = ["${local.bucket_arn}/${local.mlflow_artifact_prefix}/*"]
      },
      {
        Sid      = "UseArtifactKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [local.kms_key_arn]
      },
      {
        Sid      = "ReadDatabaseSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = [module.mlflow_db.master_secret_arn]
      },
    ]
  }
}

module "pipeline_identity" {
  source          = "./modules/pod_identity"
  name            = "${local.name}-pipeline"
  cluster_name    = module.eks.cluster_name
  namespace       = var.pipeline_namespace
  service_account = var.pipeline_service_account
  policy_json     = jsonencode(local.pipeline_policy)
}

module "mlflow_identity" {
  source          = "./modules/pod_identity"
  name            = "${local.name}-mlflow"
  cluster_name    = module.eks.cluster_name
  namespace       = var.mlflow_namespace
  service_account = var.mlflow_service_account
  policy_json     = jsonencode(local.mlflow_policy)
}

# Cluster Autoscaler (kube-system/cluster-autoscaler) scales the managed GPU groups from zero
# when a GPU pod is pending. EKS names managed node group ASGs eks-<group>-<id> and tags
# them k8s.io/cluster-autoscaler/<cluster>=owned; writes are limited to those groups, and
# node group lookups to this cluster. Only the Describe/Get calls, which IAM cannot scope
# to a resource, keep "*".
module "cluster_autoscaler_identity" {
  source          = "./modules/pod_identity"
  name            = "${local.name}-cluster-autoscaler"
  cluster_name    = module.eks.cluster_name
  namespace       = "kube-system"
  service_account = "cluster-autoscaler"
  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "Discover"
        Effect = "Allow"
        Action = [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLaunchConfigurations",
          "autoscaling:DescribeScalingActivities",
          "autoscaling:DescribeTags",
          "ec2:DescribeImages",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplateVersions",
          "ec2:GetInstanceTypesFromInstanceRequirements",
        ]
        Resource = ["*"]
      },
      {
        Sid      = "DescribeOwnNodegroups"
        Effect   = "Allow"
        Action   = ["eks:DescribeNodegroup"]
        Resource = ["arn:${local.partition}:eks:${var.region}:${local.account_id}:nodegroup/${local.cluster_name}/*/*"]
      },
      {
        Sid      = "ScaleOwnGroups"
        Effect   = "Allow"
        Action   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
        Resource = ["arn:${local.partition}:autoscaling:${var.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*"]
        Condition = {
          StringEquals = { "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.cluster_name}" = "owned" }
        }
      },
    ]
  })
}
