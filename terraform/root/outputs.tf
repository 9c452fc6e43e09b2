output "hosts" {
  description = "The hubs of this environment (the contract read by the inventory, quotas and ssh)."
  value       = module.hub.hosts
}

output "hub" {
  description = "What the hub is made of, for operators: its instance (a new ID when rebuilt), its two ZFS volumes in attachment order, and its floating IP or null."
  value = {
    instance_id = module.hub.instance_id
    volume_ids  = module.hub.volume_ids
    floating_ip = module.hub.floating_ip
  }
}
