# Invariants that must hold in every environment. Run against each tfvars file:
#   terraform test -var-file=envs/dev.tfvars   (infra/validate.sh runs dev and prod)
# The aws provider is mocked: nothing is created and no credentials are needed. Computed
# attributes that the assertions compare (ARNs) get fixed values below; everything else
# asserted comes from this configuration itself.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::miva-test-artifacts"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000001"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      vpc_config = { cluster_security_group_id = "sg-0cluster000000000" }
    }
  }

  mock_resource "aws_db_instance" {
    defaults = {
      master_user_secret = [{
        secret_arn    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-mlflow"
        kms_key_id    = "alias/aws/secretsmanager"
        secret_status = "active"
      }]
    }
  }

  # Provider-side validation wants real-looking ids.
  mock_resource "aws_launch_template" {
    defaults = {
      id = "lt-0123456789abcdef0"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mocked"
    }
  }
}

run "apply_with_mocked_aws" {
  command = apply

  # ------------------------------------------------------------- GPU node pools
  assert {
    condition     = length(output.checks.gpu_pools) >= 1
    error_message = "At least one GPU node pool must exist."
  }

  assert {
    condition     = alltrue([for p in values(output.checks.gpu_pools) : p.ami_type == "AL2023_x86_64_NVIDIA"])
    error_message = "Every GPU pool must run the AL2023 NVIDIA AMI."
  }

  assert {
    condition = alltrue([for p in values(output.checks.gpu_pools) :
      contains(p.taints, { key = "nvidia.com/gpu", value = "true", effect = "NO_SCHEDULE" })
    ])
    error_message = "Every GPU pool must carry the nvidia.com/gpu=true:NoSchedule taint."
  }

  assert {
    condition     = alltrue([for p in values(output.checks.gpu_pools) : lookup(p.labels, "miva.ai/pool", "") == "gpu"])
    error_message = "Every GPU pool must carry the label miva.ai/pool=gpu that the pipeline selects."
  }

  assert {
    condition     = output.gpu_node_selector == tomap({ "miva.ai/pool" = "gpu" })
    error_message = "The exported GPU node selector must match the pipeline default pipeline.gpu_node_selector."
  }

  assert {
    condition     = alltrue([for p in values(output.checks.gpu_pools) : p.scaling.min_size == 0])
    error_message = "GPU pools must be able to scale to zero (min_size 0)."
  }

  assert {
    condition = alltrue([for p in values(output.checks.gpu_pools) :
      p.root_volume.size_gb >= 200 && p.root_volume.encrypted == "true" && p.root_volume.type == "gp3" && p.root_volume.device == "/dev/xvda"
    ])
    error_message = "GPU nodes need an encrypted gp3 root volume (/dev/xvda) of at least 200 GiB."
  }

  # ------------------------------------------------------------- cluster
  assert {
    condition     = output.checks.authentication_mode == "API"
    error_message = "The cluster must use API (access entry) authentication."
  }

  assert {
    condition     = contains(output.checks.addons, "eks-pod-identity-agent")
    error_message = "The Pod Identity agent add-on must be installed."
  }

  # ------------------------------------------------------------- artifact bucket
  assert {
    condition     = output.checks.bucket.sse_algorithm == "aws:kms" && output.checks.bucket.sse_kms_key == output.checks.bucket_kms_key_arn
    error_message = "The bucket must be encrypted with its own KMS key."
  }

  assert {
    condition = alltrue([
      output.checks.bucket.block_public_acls,
      output.checks.bucket.block_public_policy,
      output.checks.bucket.ignore_public_acls,
      output.checks.bucket.restrict_public,
    ])
    error_message = "All four public access blocks must be on."
  }

  assert {
    condition     = output.checks.bucket.object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }

  assert {
    condition     = output.checks.bucket.versioning == "Enabled"
    error_message = "The bucket must be versioned."
  }

  assert {
    condition = alltrue([for s in jsondecode(output.checks.bucket.bucket_policy).Statement :
      s.Effect == "Deny" && s.Condition.Bool["aws:SecureTransport"] == "false"
    ])
    error_message = "The bucket policy may only deny (non-TLS access); it must never allow anything."
  }

  assert {
    condition     = contains(output.checks.bucket.lifecycle_rule_ids, "abort-incomplete-multipart-uploads") && contains(output.checks.bucket.lifecycle_rule_ids, "expire-noncurrent-versions")
    error_message = "Lifecycle rules must abort stale multipart uploads and expire old versions."
  }

  assert {
    condition     = startswith(output.pipeline_root, "s3://${output.artifact_bucket}/")
    error_message = "The pipeline root must live in the artifact bucket."
  }

  # ------------------------------------------------------------- database
  assert {
    condition     = output.checks.database.publicly_accessible == false
    error_message = "The MLflow database must not be publicly accessible."
  }

  assert {
    condition     = output.checks.database.storage_encrypted && output.checks.database.manage_master_user_password
    error_message = "The database must be encrypted and use an RDS-managed master password."
  }

  assert {
    condition = alltrue([for r in output.checks.database.ingress :
      r.cidr_ipv4 == null && r.referenced_security_group_id == output.checks.cluster_sg_id && r.from_port == 5432 && r.to_port == 5432
    ]) && length(output.checks.database.ingress) == 1
    error_message = "The database may be reached on 5432 from the cluster security group only, never from a CIDR."
  }

  # ------------------------------------------------------------- pipeline identity
  assert {
    condition = alltrue(flatten([for s in jsondecode(output.checks.pipeline_policy).Statement : [
      for r in s.Resource : contains([
        output.checks.bucket_arn,
        "${output.checks.bucket_arn}/*",
        output.checks.bucket_kms_key_arn,
      ], r)
    ]]))
    error_message = "The pipeline role may only reach its own bucket (and that bucket's key)."
  }

  assert {
    condition = alltrue(flatten([for s in jsondecode(output.checks.pipeline_policy).Statement : [
      for a in s.Action : !strcontains(a, "*") && (startswith(a, "s3:") || startswith(a, "kms:"))
    ]]))
    error_message = "The pipeline role gets explicit S3/KMS actions only: no wildcards, no other services."
  }

  assert {
    condition = length(setintersection(
      toset(flatten([for s in jsondecode(output.checks.pipeline_policy).Statement : s.Action])),
      toset(["s3:DeleteBucket", "s3:PutBucketPolicy", "s3:PutBucketAcl", "s3:PutObjectAcl", "s3:PutBucketPublicAccessBlock"]),
    )) == 0
    error_message = "The pipeline role must not administer the bucket."
  }

  assert {
    condition     = alltrue([for s in jsondecode(output.checks.pipeline_policy).Statement : s.Effect == "Allow"])
    error_message = "Unexpected statement in the pipeline policy."
  }

  assert {
    condition     = jsondecode(output.checks.pipeline_trust).Statement[0].Principal == { Service = "pods.eks.amazonaws.com" } && length(jsondecode(output.checks.pipeline_trust).Statement) == 1
    error_message = "Only EKS Pod Identity may assume the pipeline role."
  }

  assert {
    condition     = output.checks.pipeline_binding.namespace == var.pipeline_namespace && output.checks.pipeline_binding.service_account == var.pipeline_service_account
    error_message = "The pipeline role must be bound to the pipeline service account."
  }

  # ------------------------------------------------------------- MLflow identity
  assert {
    condition = alltrue(flatten([for s in jsondecode(output.checks.mlflow_policy).Statement : [
      for r in s.Resource : r != "*" && (startswith(r, "${output.checks.bucket_arn}/mlflow/") || r == output.checks.bucket_arn || r == output.checks.bucket_kms_key_arn || r == output.mlflow_db_secret_arn)
    ]]))
    error_message = "The MLflow role may only reach mlflow/ in the bucket and its own database secret."
  }

  assert {
    condition     = output.checks.mlflow_binding.namespace == "miva" && output.checks.mlflow_binding.service_account == "mlflow"
    error_message = "The MLflow role must be bound to miva/mlflow (the k8s manifests use that service account)."
  }

  # ------------------------------------------------------------- outputs the Makefile and k8s use
  assert {
    condition = alltrue([for k in ["AWS_REGION", "CLUSTER_NAME", "PIPELINE_ROOT", "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_DB_HOST", "MLFLOW_DB_SECRET_ARN", "MLFLOW_IMAGE", "GPU_IMAGE", "NODE_ROLE_NAME"] :
      length(regexall("(?m)^${k}=\\S+$", output.k8s_env)) == 1
    ])
    error_message = "k8s_env must define every key the kustomize overlays read, each with a value."
  }

  assert {
    condition     = yamldecode(output.kfp_launcher_providers).s3.default.region == var.region && yamldecode(output.kfp_launcher_providers).s3.default.credentials.fromEnv == true
    error_message = "kfp-launcher providers must point the S3 client at this region and the pod's own credentials."
  }

  assert {
    condition     = output.image_registry == "123456789012.dkr.ecr.${var.region}.amazonaws.com/miva" && contains(keys(output.ecr_repository_urls), "miva-base") && contains(keys(output.ecr_repository_urls), "miva-gpu")
    error_message = "ECR must hold miva/miva-base and miva/miva-gpu under the exported image_registry."
  }
}
