# The variable validations reject configurations that would break the pipeline contract.
# Plans only, with the aws provider mocked.

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  environment        = "test"
  availability_zones = ["us-east-1a", "us-east-1b"]
  gpu_node_groups = {
    l40s = { instance_types = ["g6e.xlarge"], max_size = 1 }
  }
}

run "defaults_plan" {
  command = plan

  assert {
    condition     = var.gpu_node_groups["l40s"].min_size == 0 && var.gpu_node_groups["l40s"].disk_size_gb >= 200
    error_message = "A GPU pool defaults to min_size 0 and a large root volume."
  }

  assert {
    condition     = var.gpu_pool_label == tomap({ "miva.ai/pool" = "gpu" })
    error_message = "The default pool label must equal the pipeline's default GPU node selector."
  }
}

run "rejects_small_gpu_root_volume" {
  command = plan
  variables {
    gpu_node_groups = {
      l40s = { instance_types = ["g6e.xlarge"], max_size = 1, disk_size_gb = 50 }
    }
  }
  expect_failures = [var.gpu_node_groups]
}

run "rejects_min_size_above_max" {
  command = plan
  variables {
    gpu_node_groups = {
      h100 = { instance_types = ["p5.48xlarge"], min_size = 3, desired_size = 3, max_size = 2 }
    }
  }
  expect_failures = [var.gpu_node_groups]
}

run "rejects_single_zone" {
  command = plan
  variables {
    availability_zones = ["us-east-1a"]
  }
  expect_failures = [var.availability_zones]
}

# ------------------------------------------------------------------ API endpoint exposure

run "endpoint_is_private_by_default" {
  command = plan

  assert {
    condition     = var.cluster_endpoint_public_access == false && length(var.cluster_endpoint_public_cidrs) == 0
    error_message = "The EKS API must be private unless an environment opens it to listed CIDRs."
  }
}

run "accepts_public_endpoint_for_listed_cidrs" {
  command = plan
  variables {
    cluster_endpoint_public_access = true
    cluster_endpoint_public_cidrs  = ["198.51.100.7/32"]
  }

  assert {
    condition     = output.checks.cluster.public_access_cidrs == toset(["198.51.100.7/32"])
    error_message = "The public endpoint must be open to exactly the listed CIDRs."
  }
}

run "rejects_public_endpoint_open_to_the_internet" {
  command = plan
  variables {
    cluster_endpoint_public_access = true
    cluster_endpoint_public_cidrs  = ["0.0.0.0/0"]
  }
  expect_failures = [var.cluster_endpoint_public_cidrs]
}

run "rejects_public_endpoint_without_cidrs" {
  command = plan
  variables {
    cluster_endpoint_public_access = true
    cluster_endpoint_public_cidrs  = []
  }
  expect_failures = [var.cluster_endpoint_public_cidrs]
}

# ------------------------------------------------------------------ images and logs

run "rejects_latest_image_tag" {
  command = plan
  variables {
    image_tag = "latest"
  }
  expect_failures = [var.image_tag]
}

run "rejects_malformed_image_digest" {
  command = plan
  variables {
    image_tag     = "0.1.0-0123456789ab"
    image_digests = { miva-base = "sha256:1234" }
  }
  expect_failures = [var.image_digests]
}

run "rejects_retention_cloudwatch_does_not_offer" {
  command = plan
  variables {
    log_retention_days = 100
  }
  expect_failures = [var.log_retention_days]
}

run "rejects_unknown_monitoring_interval" {
  command = plan
  variables {
    mlflow_db = {
      instance_class        = "db.t4g.micro"
      engine_version        = "16"
      allocated_storage_gb  = 20
      max_allocated_storage = 50
      multi_az              = false
      backup_retention_days = 1
      deletion_protection   = false
      skip_final_snapshot   = true
      monitoring_interval   = 45
    }
  }
  expect_failures = [var.mlflow_db]
}
