# Development: one NAT gateway, small database without Multi-AZ, one on-demand L40S pool and
# one spot pool, everything deletable by `make infra-destroy env=dev`.
environment        = "dev"
region             = "us-east-1"
availability_zones = ["us-east-1a", "us-east-1b"]
vpc_cidr           = "10.40.0.0/16"
single_nat_gateway = true

# The EKS API is private (reachable from the VPC). To run kubectl from a laptop, open the
# public endpoint to your own address only, without committing it:
#   TF_VAR_cluster_endpoint_public_access=true \
#   TF_VAR_cluster_endpoint_public_cidrs='["198.51.100.7/32"]' make infra-apply env=dev
# 0.0.0.0/0 is rejected by the variable's validation.
cluster_endpoint_public_access = false

# Dev logs are for debugging, not an audit trail.
log_retention_days = 30

system_node_group = {
  instance_types = ["m6i.xlarge"]
  min_size       = 1
  max_size       = 3
  desired_size   = 2
  disk_size_gb   = 100
}

gpu_node_groups = {
  l40s = {
    instance_types = ["g6e.xlarge", "g6e.2xlarge"]
    min_size       = 0
    max_size       = 2
    desired_size   = 0
    disk_size_gb   = 300
  }
  l40s-x4-spot = {
    instance_types = ["g6e.12xlarge"]
    capacity_type  = "SPOT"
    min_size       = 0
    max_size       = 2
    desired_size   = 0
    disk_size_gb   = 500
  }
}

artifact_bucket_force_destroy      = true
pipeline_root_expiration_days      = 14
noncurrent_version_expiration_days = 7

ecr_image_tag_mutability = "MUTABLE"
ecr_keep_images          = 10
ecr_force_delete         = true

mlflow_db = {
  instance_class        = "db.t4g.micro"
  engine_version        = "16"
  allocated_storage_gb  = 20
  max_allocated_storage = 50
  multi_az              = false
  backup_retention_days = 1
  deletion_protection   = false
  skip_final_snapshot   = true
  performance_insights  = false
  monitoring_interval   = 0
}
