# The contract with the rest of the project: the Ansible inventory, quotas and ssh read `hosts`
# from the state, never resource internals.
output "hosts" {
  description = "Per host name: its public address, SSH user, inventory groups and the by-id paths of its two ZFS volumes."
  value = {
    (local.fqdn) = {
      name       = local.fqdn
      address    = local.public_ipv4
      ssh_user   = var.openstack.ssh_user
      groups     = ["hub", var.environment_type, var.environment]
      zfs_disk_1 = local.zfs_disks[0]
      zfs_disk_2 = local.zfs_disks[1]
    }
  }
}

output "instance_id" {
  description = "ID of the hub's instance (changes when the hub is rebuilt)."
  value       = openstack_compute_instance_v2.hub.id
}

output "volume_ids" {
  description = "IDs of the two ZFS volumes, in attachment order (kept when the hub is rebuilt)."
  value       = local.volume_ids
}

output "floating_ip" {
  description = "The hub's floating IP, or null when it has none."
  value       = local.floating_ip
}
