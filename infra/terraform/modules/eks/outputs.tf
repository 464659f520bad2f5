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
