terraform {
  # 1.7 brings mock providers to `terraform test`, 1.9 validations that read other variables.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
    }
  }

  # State is local by default (one workspace per environment, see the Makefile).
  # For a team, add `backend "s3" {}` here and pass -backend-config at init time.
}
