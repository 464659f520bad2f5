output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "VPC CIDR block."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnet ids, one per zone."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnet ids, one per zone."
  value       = aws_subnet.public[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets (all default-route through NAT)."
  value       = aws_route_table.private[*].id
}

output "nat_gateway_count" {
  description = "Number of NAT gateways."
  value       = length(aws_nat_gateway.this)
}

output "security" {
  description = "Flow logging and the default security group, as applied (asserted by the terraform tests)."
  value = {
    flow_log_traffic_type     = aws_flow_log.this.traffic_type
    flow_log_destination_type = aws_flow_log.this.log_destination_type
    flow_log_destination      = aws_flow_log.this.log_destination
    flow_log_group            = aws_cloudwatch_log_group.flow_logs.name
    flow_log_group_arn        = aws_cloudwatch_log_group.flow_logs.arn
    flow_log_group_kms        = aws_cloudwatch_log_group.flow_logs.kms_key_id
    flow_log_group_retention  = aws_cloudwatch_log_group.flow_logs.retention_in_days
    flow_log_policy           = aws_iam_role_policy.flow_logs.policy
    default_sg_ingress        = aws_default_security_group.this.ingress
    default_sg_egress         = aws_default_security_group.this.egress
  }
}
