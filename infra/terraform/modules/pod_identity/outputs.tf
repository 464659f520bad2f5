output "role_arn" {
  description = "ARN of the role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the role."
  value       = aws_iam_role.this.name
}

output "policy" {
  description = "The inline policy document (JSON)."
  value       = aws_iam_role_policy.this.policy
}

output "trust_policy" {
  description = "The role's trust policy (JSON)."
  value       = aws_iam_role.this.assume_role_policy
}

output "association" {
  description = "namespace and service account bound to the role."
  value = {
    namespace       = aws_eks_pod_identity_association.this.namespace
    service_account = aws_eks_pod_identity_association.this.service_account
    role_arn        = aws_eks_pod_identity_association.this.role_arn
  }
}
