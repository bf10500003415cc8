terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
  # State holds generated credentials: use an encrypted, private bucket.
  # terraform init -backend-config=backend.hcl  (see deploy/README.md)
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "sweetdream"
      Environment = "prod"
      ManagedBy   = "terraform"
    }
  }
}
