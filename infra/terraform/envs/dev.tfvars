# Development: one NAT gateway, small database without Multi-AZ, one on-demand L40S pool and
# one spot pool, everything deletable by `make infra-destroy env=dev`.
environment        = "dev"
region             = "us-east-1"
availability_zones = ["us-east-1a", "us-east-1b"]
vpc_cidr           = "10.40.0.0/16"
single_nat_gateway = true

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
}
