output "node_group_name" {
  description = "EKS node group name."
  value       = aws_eks_node_group.this.node_group_name
}

output "labels" {
  description = "Kubernetes labels on the nodes."
  value       = aws_eks_node_group.this.labels
}

output "instance_types" {
  description = "Instance types of the pool."
  value       = aws_eks_node_group.this.instance_types
}

output "ami_type" {
  description = "AMI type of the pool."
  value       = aws_eks_node_group.this.ami_type
}

output "taints" {
  description = "Kubernetes taints on the nodes."
  value = [for t in aws_eks_node_group.this.taint : {
    key    = t.key
    value  = t.value
    effect = t.effect
  }]
}

output "scaling" {
  description = "min/max/desired node counts."
  value       = aws_eks_node_group.this.scaling_config[0]
}

output "root_volume" {
  description = "Root volume of the launch template (size in GiB, type, encryption)."
  value = {
    device    = aws_launch_template.this.block_device_mappings[0].device_name
    size_gb   = aws_launch_template.this.block_device_mappings[0].ebs[0].volume_size
    type      = aws_launch_template.this.block_device_mappings[0].ebs[0].volume_type
    encrypted = aws_launch_template.this.block_device_mappings[0].ebs[0].encrypted
  }
}

output "metadata_options" {
  description = "Instance metadata settings of the launch template (IMDSv2, hop limit)."
  value = {
    http_tokens                 = aws_launch_template.this.metadata_options[0].http_tokens
    http_put_response_hop_limit = aws_launch_template.this.metadata_options[0].http_put_response_hop_limit
    http_endpoint               = aws_launch_template.this.metadata_options[0].http_endpoint
  }
}
