# One GPU node pool: a launch template with a large encrypted gp3 root volume and an EKS
# managed node group on the AL2023 NVIDIA AMI (driver and container toolkit preinstalled;
# the device plugin comes from infra/k8s). Nodes carry the nvidia.com/gpu NoSchedule taint,
# so only pods that tolerate it (the GPU stages) land there, and the pool label that the
# pipeline's node selector matches.

locals {
  labels = merge(var.pool_label, {
    "miva.ai/gpu-pool"       = var.name
    "nvidia.com/gpu.present" = "true"
  })
  taint = {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }
}

resource "aws_launch_template" "this" {
  name_prefix = "${var.cluster_name}-gpu-${var.name}-"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.disk_size_gb
      volume_type           = "gp3"
      iops                  = var.disk_iops
      throughput            = var.disk_mbps
      encrypted             = true
      delete_on_termination = true
    }
  }

  # IMDSv2 only, hop limit 1: pods (the GPU stages run model-written tool code) cannot
  # reach the node role's credentials; see modules/eks for why Pod Identity still works.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.cluster_name}-gpu-${var.name}" }
  }
}

resource "aws_eks_node_group" "this" {
  cluster_name    = var.cluster_name
  node_group_name = "gpu-${var.name}"
  node_role_arn   = var.node_role_arn
  subnet_ids      = var.subnet_ids
  ami_type        = "AL2023_x86_64_NVIDIA"
  capacity_type   = var.capacity_type
  instance_types  = var.instance_types

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  scaling_config {
    min_size     = var.min_size
    max_size     = var.max_size
    desired_size = var.desired_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = local.labels

  taint {
    key    = local.taint.key
    value  = local.taint.value
    effect = local.taint.effect
  }

  # Cluster Autoscaler reads these to scale a group up from zero nodes.
  tags = merge(
    { for k, v in local.labels : "k8s.io/cluster-autoscaler/node-template/label/${k}" => v },
    { "k8s.io/cluster-autoscaler/node-template/taint/${local.taint.key}" = "${local.taint.value}:NoSchedule" },
  )

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }
}
