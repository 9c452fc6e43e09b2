# The same contract as the hub's: the inventory and ssh read `hosts`, never resource internals.
output "hosts" {
  description = "The front door's row: its public address, SSH user and inventory groups (no ZFS volumes)."
  value = {
    (local.fqdn) = {
      name     = local.fqdn
      address  = local.public_ipv4
      ssh_user = var.openstack.ssh_user
      groups   = ["frontdoor", var.environment_type, var.environment]
    }
  }
}

output "instance_id" {
  description = "ID of the front door's instance."
  value       = openstack_compute_instance_v2.frontdoor.id
}

output "floating_ip" {
  description = "The front door's floating IP, or null when it has none."
  value       = local.floating_ip
}
