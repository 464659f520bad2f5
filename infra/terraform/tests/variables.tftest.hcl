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
