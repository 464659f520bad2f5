# PostgreSQL for the MLflow backend store (runs, params, metrics, registry). Private subnets
# only, reachable on 5432 from the cluster's nodes, encrypted at rest, and a master password
# that RDS generates and keeps in Secrets Manager (nobody types or stores it).

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

  backup_retention_period    = var.settings.backup_retention_days
  deletion_protection        = var.settings.deletion_protection
  skip_final_snapshot        = var.settings.skip_final_snapshot
  final_snapshot_identifier  = var.settings.skip_final_snapshot ? null : "${var.name}-mlflow-final"
  copy_tags_to_snapshot      = true
  auto_minor_version_upgrade = true
  apply_immediately          = false
}
