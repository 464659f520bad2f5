# Consumed by the Makefile (infra-apply writes k8s_env into the kustomize overlay) and by
# the pipeline config (pipeline.image_registry, pipeline.pipeline_root).

output "region" {
  description = "AWS region."
  value       = var.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.cluster_endpoint
}

output "update_kubeconfig_command" {
  description = "Command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

output "artifact_bucket" {
  description = "S3 artifact bucket."
  value       = module.artifacts.bucket_name
}

output "pipeline_root" {
  description = "KFP pipeline root (config pipeline.pipeline_root, kfp-launcher defaultPipelineRoot)."
  value       = module.artifacts.pipeline_root
}

output "mlflow_artifacts_destination" {
  description = "Where the MLflow server stores artifacts."
  value       = "s3://${module.artifacts.bucket_name}/${local.mlflow_artifact_prefix}"
}

output "image_registry" {
  description = "Value for config pipeline.image_registry: images are <image_registry>/<image>:<tag>."
  value       = local.image_registry
}

output "ecr_repository_urls" {
  description = "Image name -> ECR repository URL."
  value       = module.ecr.repository_urls
}

output "mlflow_db_address" {
  description = "Hostname of the MLflow PostgreSQL database."
  value       = module.mlflow_db.address
}

output "mlflow_db_secret_arn" {
  description = "Secrets Manager ARN of the RDS-managed master credentials."
  value       = module.mlflow_db.master_secret_arn
}

output "pipeline_role_arn" {
  description = "IAM role the pipeline service account receives through Pod Identity."
  value       = module.pipeline_identity.role_arn
}

output "mlflow_role_arn" {
  description = "IAM role the MLflow service account receives through Pod Identity."
  value       = module.mlflow_identity.role_arn
}

output "pipeline_service_account" {
  description = "namespace/name of the pipeline service account."
  value       = "${var.pipeline_namespace}/${var.pipeline_service_account}"
}

output "node_role_name" {
  description = "Worker node IAM role name (Karpenter EC2NodeClass spec.role)."
  value       = module.eks.node_role_name
}

output "gpu_node_selector" {
  description = "Label of the GPU nodes: set pipeline.gpu_node_selector to this."
  value       = var.gpu_pool_label
}

output "gpu_node_groups" {
  description = "GPU node group name -> instance types."
  value       = { for name, g in module.gpu_node_group : name => g.instance_types }
}

locals {
  # Image references for the manifests: <registry>/<image>:<tag>@<digest> once `make
  # images` has recorded tag and digests (images/tags.env, passed by terraform.sh).
  image_registry = "${local.account_id}.dkr.ecr.${var.region}.amazonaws.com/${var.ecr_namespace}"
  k8s_images = { for name in ["miva-base", "miva-gpu"] : name => (
    var.image_tag == "" ? "placeholder-run-make-images-then-make-infra-apply" :
    "${local.image_registry}/${name}:${var.image_tag}${lookup(var.image_digests, name, "") == "" ? "" : "@${var.image_digests[name]}"}"
  ) }
}

output "k8s_env" {
  description = "KEY=VALUE lines for infra/k8s/overlays/<env>/infra.env (make infra-apply writes it)."
  value = join("\n", [
    "AWS_REGION=${var.region}",
    "CLUSTER_NAME=${module.eks.cluster_name}",
    "ARTIFACT_BUCKET=${module.artifacts.bucket_name}",
    "PIPELINE_ROOT=${module.artifacts.pipeline_root}",
    "MLFLOW_ARTIFACTS_DESTINATION=s3://${module.artifacts.bucket_name}/${local.mlflow_artifact_prefix}",
    "MLFLOW_DB_HOST=${module.mlflow_db.address}",
    "MLFLOW_DB_PORT=${module.mlflow_db.port}",
    "MLFLOW_DB_NAME=${module.mlflow_db.db_name}",
    "MLFLOW_DB_SECRET_ARN=${module.mlflow_db.master_secret_arn}",
    "BASE_IMAGE=${local.k8s_images["miva-base"]}",
    "GPU_IMAGE=${local.k8s_images["miva-gpu"]}",
    "NODE_ROLE_NAME=${module.eks.node_role_name}",
    # NetworkPolicy egress: RDS and the API server's private endpoint live in the VPC; pods
    # reach the API server through the default/kubernetes Service address.
    "VPC_CIDR=${module.network.vpc_cidr}",
    "KUBE_API_SERVICE_CIDR=${cidrhost(module.eks.service_cidr, 1)}/32",
    "",
  ])
}

output "kfp_launcher_providers" {
  description = "providers entry of the kfp-launcher ConfigMap (make infra-apply writes it to kfp-providers.yaml)."
  value = yamlencode({
    s3 = {
      default = {
        region      = var.region
        credentials = { fromEnv = true }
      }
    }
  })
}

output "checks" {
  description = "Security-relevant settings as applied, for the terraform tests and for audits."
  value = {
    authentication_mode = module.eks.authentication_mode
    addons              = module.eks.addons
    bucket              = module.artifacts.security
    bucket_arn          = module.artifacts.bucket_arn
    bucket_kms_key_arn  = module.artifacts.kms_key_arn
    database            = module.mlflow_db.security
    cluster_sg_id       = module.eks.cluster_security_group_id
    pipeline_policy     = module.pipeline_identity.policy
    pipeline_trust      = module.pipeline_identity.trust_policy
    pipeline_binding    = module.pipeline_identity.association
    pipeline_role_arn   = module.pipeline_identity.role_arn
    mlflow_policy       = module.mlflow_identity.policy
    mlflow_binding      = module.mlflow_identity.association
    gpu_pools = { for name, g in module.gpu_node_group : name => {
      ami_type    = g.ami_type
      labels      = g.labels
      taints      = g.taints
      scaling     = g.scaling
      root_volume = g.root_volume
    } }
    nat_gateways = module.network.nat_gateway_count
    cluster      = module.eks.security
    network      = module.network.security
    log_key_arn  = module.log_encryption.key_arn
    log_key      = module.log_encryption.key_policy
    ecr          = module.ecr.encryption
    ecr_kms_key  = module.ecr.kms_key_arn
    launch_templates = merge(
      { system = module.eks.security.system_metadata_options },
      { for name, g in module.gpu_node_group : "gpu-${name}" => g.metadata_options },
    )
    cluster_autoscaler_policy = module.cluster_autoscaler_identity.policy
  }
}

output "cluster_autoscaler_role_arn" {
  description = "IAM role of kube-system/cluster-autoscaler (Pod Identity)."
  value       = module.cluster_autoscaler_identity.role_arn
}
