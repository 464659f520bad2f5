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

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:mocked"
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
    condition = alltrue([for k in ["AWS_REGION", "CLUSTER_NAME", "PIPELINE_ROOT", "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_DB_HOST", "MLFLOW_DB_SECRET_ARN", "BASE_IMAGE", "GPU_IMAGE", "NODE_ROLE_NAME", "VPC_CIDR", "KUBE_API_SERVICE_CIDR"] :
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

  # ------------------------------------------------------------- API endpoint (issue 19)
  assert {
    condition     = output.checks.cluster.endpoint_private_access == true
    error_message = "The private API endpoint must be on (nodes and in-VPC operators use it)."
  }

  assert {
    condition = !output.checks.cluster.endpoint_public_access || (
      length(output.checks.cluster.public_access_cidrs) > 0 &&
      alltrue([for c in output.checks.cluster.public_access_cidrs : !endswith(c, "/0")])
    )
    error_message = "A public API endpoint must be limited to listed CIDRs, never 0.0.0.0/0."
  }

  # ------------------------------------------------------------- control-plane logging
  assert {
    condition = length(setsubtract(
      ["api", "audit", "authenticator", "controllerManager", "scheduler"],
      output.checks.cluster.control_plane_log_types,
    )) == 0
    error_message = "Every EKS control-plane log type must be enabled."
  }

  assert {
    condition = (
      output.checks.cluster.control_plane_log_group == "/aws/eks/${output.cluster_name}/cluster" &&
      output.checks.cluster.log_group_kms == output.checks.log_key_arn &&
      output.checks.cluster.log_group_retention == var.log_retention_days
    )
    error_message = "The control-plane log group must be the one EKS writes to, encrypted with the log key, with the configured retention."
  }

  assert {
    condition = anytrue([for s in jsondecode(output.checks.log_key).Statement :
      s.Principal == { Service = "logs.${var.region}.amazonaws.com" } &&
      try(s.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"], "") == "arn:aws:logs:${var.region}:123456789012:log-group:*"
    ])
    error_message = "The log key must let CloudWatch Logs of this region use it for this account's log groups only."
  }

  # ------------------------------------------------------------- node metadata (IMDS)
  assert {
    condition     = length(output.checks.launch_templates) == 1 + length(var.gpu_node_groups)
    error_message = "Every node group (system and each GPU pool) must have a launch template under test."
  }

  assert {
    condition = alltrue([for name, m in output.checks.launch_templates :
      m.http_tokens == "required" && m.http_put_response_hop_limit == 1 && m.http_endpoint == "enabled"
    ])
    error_message = "Every launch template must require IMDSv2 with hop limit 1, so pods cannot reach the node role's credentials."
  }

  assert {
    condition     = jsondecode(output.checks.cluster.addon_configuration["vpc-cni"]).enableNetworkPolicy == "true"
    error_message = "The VPC CNI must enforce NetworkPolicies (the k8s overlays rely on them)."
  }

  # ------------------------------------------------------------- VPC
  assert {
    condition = (
      output.checks.network.flow_log_traffic_type == "ALL" &&
      output.checks.network.flow_log_destination_type == "cloud-watch-logs" &&
      output.checks.network.flow_log_destination == output.checks.network.flow_log_group_arn &&
      output.checks.network.flow_log_group_kms == output.checks.log_key_arn &&
      output.checks.network.flow_log_group_retention == var.log_retention_days
    )
    error_message = "The VPC must log all flows to its encrypted flow-log group."
  }

  assert {
    condition = alltrue(flatten([for s in jsondecode(output.checks.network.flow_log_policy).Statement : [
      for r in s.Resource : startswith(r, output.checks.network.flow_log_group_arn)
    ]]))
    error_message = "The flow-log delivery role may only write to its own log group."
  }

  assert {
    condition     = length(output.checks.network.default_sg_ingress) == 0 && length(output.checks.network.default_sg_egress) == 0
    error_message = "The VPC's default security group must allow nothing."
  }

  # ------------------------------------------------------------- ECR
  assert {
    condition = alltrue([for name, e in output.checks.ecr :
      e.type == "KMS" && e.kms_key == output.checks.ecr_kms_key
    ]) && length(output.checks.ecr) == length(var.ecr_images)
    error_message = "Every ECR repository must be encrypted with the stack's ECR KMS key."
  }

  # ------------------------------------------------------------- KMS key policies
  assert {
    condition = alltrue([for policy in [output.checks.log_key, output.checks.bucket.kms_key_policy, output.checks.cluster.secrets_key_policy] :
      alltrue([for s in jsondecode(policy).Statement : s.Principal != "*" && try(s.Principal.AWS, "") != "*"])
    ])
    error_message = "No KMS key policy may name a wildcard principal."
  }

  # ------------------------------------------------------------- bucket lifecycle
  assert {
    condition = anytrue([for r in output.checks.bucket.abort_incomplete_multipart :
      r.status == "Enabled" && r.days >= 1 && r.days <= 7 && (r.prefix == null || r.prefix == "")
    ])
    error_message = "An enabled lifecycle rule must abort incomplete multipart uploads bucket-wide within a week."
  }

  # ------------------------------------------------------------- database logging and auth
  assert {
    condition     = output.checks.database.iam_authentication == true
    error_message = "The database must accept IAM authentication (operators connect with short-lived tokens)."
  }

  assert {
    condition = (
      toset(output.checks.database.log_exports) == toset(["postgresql", "upgrade"]) &&
      alltrue([for name, g in output.checks.database.log_groups :
        g.kms == output.checks.log_key_arn && g.retention == var.log_retention_days
      ]) && length(output.checks.database.log_groups) == 2
    )
    error_message = "The database must export its server and upgrade logs into encrypted groups with the configured retention."
  }

  assert {
    condition = (
      output.checks.database.parameters["rds.force_ssl"] == "1" &&
      output.checks.database.parameters["log_connections"] == "1" &&
      output.checks.database.parameters["log_min_duration_statement"] == "1000" &&
      output.checks.database.parameters["log_statement"] == "none"
    )
    error_message = "TLS must be forced, connections and slow queries logged, and statements otherwise not (ALTER ROLE ... PASSWORD would land in the log)."
  }

  assert {
    condition = (
      output.checks.database.performance_insights == var.mlflow_db.performance_insights &&
      output.checks.database.monitoring_interval == var.mlflow_db.monitoring_interval
    )
    error_message = "Performance Insights and enhanced monitoring must follow the environment's settings."
  }

  # ------------------------------------------------------------- cluster autoscaler identity
  assert {
    condition = alltrue([for s in jsondecode(output.checks.cluster_autoscaler_policy).Statement :
      alltrue([for a in s.Action : can(regex("^[a-z0-9]+:(Describe|Get)", a))]) if contains(s.Resource, "*")
    ])
    error_message = "Only Describe/Get calls (which IAM cannot scope) may use \"*\" as the resource."
  }

  assert {
    condition = alltrue([for s in jsondecode(output.checks.cluster_autoscaler_policy).Statement :
      alltrue([for r in s.Resource : startswith(r, "arn:aws:autoscaling:${var.region}:123456789012:autoScalingGroup:*:autoScalingGroupName/eks-")])
      if contains(s.Action, "autoscaling:SetDesiredCapacity")
    ])
    error_message = "The autoscaler may only resize this account's EKS-managed groups."
  }

  # ------------------------------------------------------------- NetworkPolicy inputs
  assert {
    condition = (
      length(regexall("(?m)^VPC_CIDR=${replace(var.vpc_cidr, ".", "\\.")}$", output.k8s_env)) == 1 &&
      length(regexall("(?m)^KUBE_API_SERVICE_CIDR=172\\.20\\.0\\.1/32$", output.k8s_env)) == 1
    )
    error_message = "k8s_env must give the NetworkPolicies the VPC CIDR and the API server's Service address."
  }
}

# The manifests run exactly the build `make images` recorded: tag and digest.
run "pins_images_by_tag_and_digest" {
  command = apply
  variables {
    image_tag = "0.1.0-0123456789ab"
    image_digests = {
      miva-base = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
      miva-gpu  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
    }
  }

  assert {
    condition = (
      length(regexall("(?m)^BASE_IMAGE=123456789012\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/miva/miva-base:0\\.1\\.0-0123456789ab@sha256:1{64}$", output.k8s_env)) == 1 &&
      length(regexall("(?m)^GPU_IMAGE=123456789012\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com/miva/miva-gpu:0\\.1\\.0-0123456789ab@sha256:2{64}$", output.k8s_env)) == 1
    )
    error_message = "With a tag and digests, the manifests' images must be <registry>/<image>:<tag>@<digest>."
  }
}
