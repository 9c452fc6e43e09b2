output "hosts" {
  description = "The hubs of this environment (the contract read by the inventory, quotas and ssh)."
  value       = module.hub.hosts
}

output "instance_id" {
  description = "ID of the hub's instance."
  value       = module.hub.instance_id
}

output "volume_ids" {
  description = "IDs of the hub's two ZFS volumes."
  value       = module.hub.volume_ids
}

output "floating_ip" {
  description = "The hub's floating IP, or null."
  value       = module.hub.floating_ip
}
