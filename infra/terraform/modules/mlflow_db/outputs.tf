output "address" {
  description = "Hostname of the database."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the database."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Database name."
  value       = aws_db_instance.this.db_name
}

output "username" {
  description = "Master user name."
  value       = aws_db_instance.this.username
}

output "master_secret_arn" {
  description = "Secrets Manager secret (JSON with username and password) that RDS manages."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.this.id
}

output "security" {
  description = "The database's exposure settings, as applied (asserted by the terraform tests)."
  value = {
    publicly_accessible         = aws_db_instance.this.publicly_accessible
    storage_encrypted           = aws_db_instance.this.storage_encrypted
    manage_master_user_password = aws_db_instance.this.manage_master_user_password
    engine                      = aws_db_instance.this.engine
    iam_authentication          = aws_db_instance.this.iam_database_authentication_enabled
    log_exports                 = aws_db_instance.this.enabled_cloudwatch_logs_exports
    log_groups = { for name, g in aws_cloudwatch_log_group.exports : name => {
      name      = g.name
      kms       = g.kms_key_id
      retention = g.retention_in_days
    } }
    parameters           = { for p in aws_db_parameter_group.this.parameter : p.name => p.value }
    parameter_group      = aws_db_instance.this.parameter_group_name
    performance_insights = aws_db_instance.this.performance_insights_enabled
    monitoring_interval  = aws_db_instance.this.monitoring_interval
    ingress = [for r in aws_vpc_security_group_ingress_rule.postgres : {
      from_port                    = r.from_port
      to_port                      = r.to_port
      cidr_ipv4                    = r.cidr_ipv4
      referenced_security_group_id = r.referenced_security_group_id
    }]
  }
}
