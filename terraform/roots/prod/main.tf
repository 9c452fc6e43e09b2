# Root module of every prod environment. callysto copies this directory into envs/<ENV>/ before each
# Terraform run, with terraform.tfvars.json generated from env.yaml: edit this template, or env.yaml,
# never the copies.
#
# A prod hub: its two ZFS volumes and its floating IP exist already and are adopted by ID/address,
# so no Terraform run, not even 'terraform destroy', can delete the students' data or the address.

terraform {
  required_version = ">= 1.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }
}

provider "openstack" {
  # Credentials come from clouds.yaml (or OS_* variables), never from this directory.
  cloud  = var.cloud
  region = var.region
}

module "hub" {
  source = "./modules/hub"

  environment         = var.environment
  environment_type    = "prod"
  name                = var.name
  domain              = var.domain
  dns_zone            = var.dns_zone
  ipv6                = var.ipv6
  image_name          = var.image_name
  flavor_name         = var.flavor_name
  key_pair            = var.key_pair
  network_name        = var.network_name
  ssh_user            = var.ssh_user
  disk_id_prefix      = var.disk_id_prefix
  volume_size_gb      = var.volume_size_gb
  existing_volume_ids = var.existing_volume_ids
  floating_ip         = var.floating_ip
}
