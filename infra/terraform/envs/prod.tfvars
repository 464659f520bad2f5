# Production: NAT gateway per zone, Multi-AZ database with deletion protection, immutable
# image tags, H100 (p5) and A100 (p4d) pools that scale from zero.
environment        = "prod"
region             = "us-east-1"
availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
vpc_cidr           = "10.50.0.0/16"
single_nat_gateway = false

# The EKS API is private: operators reach it from the VPC (VPN, peering, SSM). To also
# open the public endpoint, list the office / VPN ranges (0.0.0.0/0 is rejected):
#   cluster_endpoint_public_access = true
#   cluster_endpoint_public_cidrs  = ["203.0.113.0/24"]
cluster_endpoint_public_access = false

# A year of control-plane, flow and database logs (audit trail).
log_retention_days = 365

system_node_group = {
  instance_types = ["m6i.2xlarge"]
  min_size       = 2
  max_size       = 6
  desired_size   = 3
  disk_size_gb   = 100
}

gpu_node_groups = {
  h100 = {
    instance_types = ["p5.48xlarge"]
    min_size       = 0
    max_size       = 4
    desired_size   = 0
    disk_size_gb   = 1000
    disk_iops      = 16000
    disk_mbps      = 1000
  }
  a100 = {
    instance_types = ["p4d.24xlarge"]
    min_size       = 0
    max_size       = 2
    desired_size   = 0
    disk_size_gb   = 1000
    disk_iops      = 16000
    disk_mbps      = 1000
  }
  l40s = {
    instance_types = ["g6e.12xlarge", "g6e.48xlarge"]
    min_size       = 0
    max_size       = 4
    desired_size   = 0
    disk_size_gb   = 500
  }
}

artifact_bucket_force_destroy      = false
pipeline_root_expiration_days      = 60
noncurrent_version_expiration_days = 90

ecr_image_tag_mutability = "IMMUTABLE"
ecr_keep_images          = 50
ecr_force_delete         = false

mlflow_db = {
  instance_class        = "db.m7g.large"
  engine_version        = "16"
  allocated_storage_gb  = 50
  max_allocated_storage = 500
  multi_az              = true
  backup_retention_days = 14
  deletion_protection   = true
  skip_final_snapshot   = false
  performance_insights  = true
  monitoring_interval   = 60
}
