# PostgreSQL for the MLflow backend store (runs, params, metrics, registry). Private subnets
# only, reachable on 5432 from the cluster's nodes, encrypted at rest, and a master password
# that RDS generates and keeps in Secrets Manager (nobody types or stores it). Server and
# upgrade logs go to encrypted CloudWatch groups; connections and slow queries are logged;
# clients must use TLS.
#
# IAM database authentication is switched on for people (an operator connects with
# `aws rds generate-db-auth-token` and a database user granted rds_iam); the MLflow server
# keeps the managed password: its SQLAlchemy pool holds one URI for the life of the
# process, and IAM tokens expire after 15 minutes.

locals {
  log_exports = ["postgresql", "upgrade"]
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-mlflow"
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "this" {
  name        = "${var.name}-mlflow-db"
  description = "MLflow PostgreSQL: 5432 from the EKS cluster only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "postgres" {
  for_each                     = var.client_security_groups
  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from ${each.key}"
}

resource "aws_db_parameter_group" "this" {
  name        = "${var.name}-mlflow-pg${split(".", var.settings.engine_version)[0]}"
  family      = "postgres${split(".", var.settings.engine_version)[0]}"
  description = "MLflow PostgreSQL: connection and slow-query logging"

  # TLS only (MLflow connects with sslmode=require; the default from PostgreSQL 15 on,
  # written out so an older engine_version gets it too).
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  # "none" on purpose: "ddl" would also log ALTER ROLE ... PASSWORD, which is how the
  # managed secret rotates. Statements slower than 1 s are logged with their text;
  # MLflow's queries carry run data, not credentials.
  parameter {
    name  = "log_statement"
    value = "none"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# RDS creates these on first export, unencrypted and kept forever; created here first
# they get the stack's retention and log key.
resource "aws_cloudwatch_log_group" "exports" {
  for_each          = toset(local.log_exports)
  name              = "/aws/rds/instance/${var.name}-mlflow/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# Enhanced monitoring (OS metrics every monitoring_interval seconds) publishes through
# this role; only created when the interval is above 0.
resource "aws_iam_role" "monitoring" {
  count = var.settings.monitoring_interval > 0 ? 1 : 0
  name  = "${var.name}-mlflow-db-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  count      = var.settings.monitoring_interval > 0 ? 1 : 0
  role       = aws_iam_role.monitoring[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

# Performance Insights holds query text: encrypted with a key of its own (RDS uses it
# through grants it creates when the instance is set up).
resource "aws_kms_key" "performance_insights" {
  count               = var.settings.performance_insights ? 1 : 0
  description         = "${var.name}-mlflow: Performance Insights encryption"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministersThroughIam"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_db_instance" "this" {
  identifier     = "${var.name}-mlflow"
  engine         = "postgres"
  engine_version = var.settings.engine_version
  instance_class = var.settings.instance_class

  db_name                     = "mlflow"
  username                    = "mlflow"
  manage_master_user_password = true

  allocated_storage     = var.settings.allocated_storage_gb
  max_allocated_storage = var.settings.max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.this.id]
  publicly_accessible    = false
  multi_az               = var.settings.multi_az

  parameter_group_name                = aws_db_parameter_group.this.name
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = local.log_exports

  performance_insights_enabled    = var.settings.performance_insights
  performance_insights_kms_key_id = var.settings.performance_insights ? aws_kms_key.performance_insights[0].arn : null
  monitoring_interval             = var.settings.monitoring_interval
  monitoring_role_arn             = var.settings.monitoring_interval > 0 ? aws_iam_role.monitoring[0].arn : null

  backup_retention_period    = var.settings.backup_retention_days
  deletion_protection        = var.settings.deletion_protection
  skip_final_snapshot        = var.settings.skip_final_snapshot
  final_snapshot_identifier  = var.settings.skip_final_snapshot ? null : "${var.name}-mlflow-final"
  copy_tags_to_snapshot      = true
  auto_minor_version_upgrade = true
  apply_immediately          = false

  depends_on = [aws_cloudwatch_log_group.exports]
}
