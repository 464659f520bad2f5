output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "API server endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_security_group_id" {
  description = "Security group EKS attaches to the control plane and to managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_role_arn" {
  description = "IAM role of all worker nodes."
  value       = aws_iam_role.node.arn
}

output "node_role_name" {
  description = "Name of the worker node role (Karpenter EC2NodeClass spec.role)."
  value       = aws_iam_role.node.name
}

output "addons" {
  description = "Names of the managed add-ons installed."
  value       = concat(keys(aws_eks_addon.before_nodes), keys(aws_eks_addon.after_nodes))
}

output "authentication_mode" {
  description = "Cluster authentication mode."
  value       = aws_eks_cluster.this.access_config[0].authentication_mode
}

output "security" {
  description = "API endpoint exposure, control-plane logging, add-on settings and node metadata access, as applied (asserted by the terraform tests)."
  value = {
    endpoint_private_access = aws_eks_cluster.this.vpc_config[0].endpoint_private_access
    endpoint_public_access  = aws_eks_cluster.this.vpc_config[0].endpoint_public_access
    public_access_cidrs     = aws_eks_cluster.this.vpc_config[0].public_access_cidrs
    control_plane_log_types = aws_eks_cluster.this.enabled_cluster_log_types
    control_plane_log_group = aws_cloudwatch_log_group.control_plane.name
    log_group_kms           = aws_cloudwatch_log_group.control_plane.kms_key_id
    log_group_retention     = aws_cloudwatch_log_group.control_plane.retention_in_days
    secrets_key_policy      = aws_kms_key.secrets.policy
    addon_configuration     = { for name, addon in aws_eks_addon.before_nodes : name => addon.configuration_values }
    system_metadata_options = {
      http_tokens                 = aws_launch_template.system.metadata_options[0].http_tokens
      http_put_response_hop_limit = aws_launch_template.system.metadata_options[0].http_put_response_hop_limit
      http_endpoint               = aws_launch_template.system.metadata_options[0].http_endpoint
    }
  }
}

output "service_cidr" {
  description = "Kubernetes Service CIDR of the cluster."
  value       = aws_eks_cluster.this.kubernetes_network_config[0].service_ipv4_cidr
}
