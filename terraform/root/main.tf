# Root module of every dev and prod environment. callysto copies this directory (and the module's
# versions.tf, which says what both require) into envs/<ENV>/ before each Terraform run, with
# terraform.tfvars.json generated from env.yaml: edit this template, or env.yaml, never the copies.
#
# A dev hub: its two ZFS volumes are created here (and go with 'terraform destroy'), a floating IP
# is allocated from cloud.floating_ip_pool when one is set. (Environments made before fleets had
# a single module.hub: callysto moves it to module.hub["<host.name>"] before Terraform runs.)
# A prod hub: its two ZFS volumes and its floating IP exist already and are adopted by ID/address,
# so no Terraform run, not even 'terraform destroy', can delete the students' data or the address
# (modules/hub refuses a prod that names them not).

provider "openstack" {
  # Credentials come from clouds.yaml (or OS_* variables), never from this directory.
  cloud  = var.cloud
  region = var.region
}

# One module instance per hub of env.yaml (hubs:, else host.name alone), keyed by its name, so
# adding or removing a hub touches no other.
module "hub" {
  source   = "./modules/hub"
  for_each = var.hubs

  environment         = var.environment
  environment_type    = var.environment_type
  host                = { name = each.key, domain = var.host.domain }
  openstack           = var.openstack
  ipv6                = var.ipv6
  volume_size_gb      = var.volume_size_gb
  existing_volume_ids = each.value.existing_volume_ids
  floating_ip         = each.value.floating_ip
  floating_ip_pool    = var.floating_ip_pool
}

# The sign-in proxy's own host, when env.yaml has a frontdoor section (else the hub runs it).
module "frontdoor" {
  source = "./modules/frontdoor"
  count  = var.frontdoor == null ? 0 : 1

  environment      = var.environment
  environment_type = var.environment_type
  name             = var.frontdoor.name
  host_domain      = var.host.domain
  openstack        = var.openstack
  ipv6             = var.ipv6
  floating_ip      = var.frontdoor.floating_ip
  floating_ip_pool = var.floating_ip_pool
}
