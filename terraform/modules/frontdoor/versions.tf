terraform {
  # OpenTofu reads the same constraints; both resolve the provider from their own registry.
  required_version = ">= 1.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }
}
