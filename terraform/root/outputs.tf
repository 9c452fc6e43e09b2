output "hosts" {
  description = "The hosts of this environment, hubs and front door (the contract read by the inventory, quotas and ssh)."
  value = merge(concat(
    [for hub in module.hub : hub.hosts],
    [for frontdoor in module.frontdoor : frontdoor.hosts],
  )...)
}

output "hubs" {
  description = "What each hub is made of, for operators, by name: its instance (a new ID when rebuilt), its two ZFS volumes in attachment order, and its floating IP or null."
  value = {
    for name, hub in module.hub : name => {
      instance_id = hub.instance_id
      volume_ids  = hub.volume_ids
      floating_ip = hub.floating_ip
    }
  }
}

output "frontdoor" {
  description = "The front door's instance and floating IP, or null when the environment has none."
  value = var.frontdoor == null ? null : {
    instance_id = module.frontdoor[0].instance_id
    floating_ip = module.frontdoor[0].floating_ip
  }
}
