variable "namespace" {
  description = "Repository namespace (repositories are <namespace>/<image>)."
  type        = string
}

variable "images" {
  description = "Image names, one repository each."
  type        = list(string)
}

variable "image_tag_mutability" {
  description = "MUTABLE or IMMUTABLE."
  type        = string

  validation {
    condition     = contains(["MUTABLE", "IMMUTABLE"], var.image_tag_mutability)
    error_message = "image_tag_mutability must be MUTABLE or IMMUTABLE."
  }
}

variable "keep_images" {
  description = "Images kept per repository."
  type        = number
}

variable "force_delete" {
  description = "Allow deleting repositories that hold images."
  type        = bool
}
