provider "aws" {
  region = var.region

  default_tags {
    tags = merge(
      {
        Project     = "miva"
        Environment = var.environment
        ManagedBy   = "terraform"
      },
      var.tags,
    )
  }
}
