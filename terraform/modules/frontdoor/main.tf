# The front door: the host of an environment's sign-in proxy when the proxy does not run on the
# hub (env.yaml frontdoor:). An instance on its own port, a security group for ssh, http, https
# and ping, an optional floating IP and its DNS records. It holds no student data: rebuilding it
# loses nothing but the proxy's sessions, which live in memory anyway.

locals {
  fqdn     = "${var.name}.${var.host_domain}"
  dns_zone = "${trimsuffix(var.openstack.dns_zone, ".")}."

  new_floating_ip = var.floating_ip == null && var.floating_ip_pool != null
  floating_ip = (
    var.floating_ip != null ? var.floating_ip
    : local.new_floating_ip ? openstack_networking_floatingip_v2.frontdoor[0].address
    : null
  )
  port_ipv4   = [for ip in openstack_networking_port_v2.frontdoor.all_fixed_ips : ip if !can(regex(":", ip))]
  port_ipv6   = [for ip in openstack_networking_port_v2.frontdoor.all_fixed_ips : ip if can(regex(":", ip))]
  public_ipv4 = coalesce(local.floating_ip, try(local.port_ipv4[0], null))

  ethertypes = var.ipv6 ? ["IPv4", "IPv6"] : ["IPv4"]
  openings = [
    { protocol = "tcp", port = 22 },
    { protocol = "tcp", port = 80 },
    { protocol = "tcp", port = 443 },
    { protocol = "icmp", port = null },
  ]
  ingress_rules = {
    for pair in setproduct(local.ethertypes, local.openings) :
    "${lower(pair[0])}-${pair[1].protocol}-${pair[1].port == null ? "any" : pair[1].port}" => {
      ethertype = pair[0]
      protocol  = pair[1].protocol == "icmp" && pair[0] == "IPv6" ? "ipv6-icmp" : pair[1].protocol
      port      = pair[1].port
      prefix    = pair[0] == "IPv4" ? "0.0.0.0/0" : "::/0"
    }
  }

  user_data = join("\n", ["#cloud-config", yamlencode({
    hostname          = var.name
    fqdn              = local.fqdn
    preserve_hostname = false
    system_info = {
      default_user = {
        name   = var.openstack.ssh_user
        groups = ["sudo"]
        sudo   = ["ALL=(ALL) NOPASSWD:ALL"]
        shell  = "/bin/bash"
      }
    }
  })])
}

data "openstack_images_image_v2" "frontdoor" {
  name        = var.openstack.image_name
  most_recent = true
}

data "openstack_networking_network_v2" "frontdoor" {
  name = var.openstack.network_name
}

data "openstack_dns_zone_v2" "frontdoor" {
  name = local.dns_zone
}

resource "openstack_networking_secgroup_v2" "frontdoor" {
  name        = local.fqdn
  description = "Front door ${local.fqdn}: ssh, http, https and ping (environment ${var.environment})"
}

resource "openstack_networking_secgroup_rule_v2" "ingress" {
  for_each = local.ingress_rules

  security_group_id = openstack_networking_secgroup_v2.frontdoor.id
  direction         = "ingress"
  ethertype         = each.value.ethertype
  protocol          = each.value.protocol
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.prefix
}

resource "openstack_networking_port_v2" "frontdoor" {
  name               = local.fqdn
  network_id         = data.openstack_networking_network_v2.frontdoor.id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.frontdoor.id]
}

resource "openstack_compute_instance_v2" "frontdoor" {
  name        = local.fqdn
  image_id    = data.openstack_images_image_v2.frontdoor.id
  flavor_name = var.openstack.flavor_name
  key_pair    = var.openstack.key_pair
  user_data   = local.user_data

  metadata = {
    environment = var.environment
    role        = "frontdoor"
  }

  network {
    port = openstack_networking_port_v2.frontdoor.id
  }

  lifecycle {
    ignore_changes = [image_id, user_data]
  }
}

resource "openstack_networking_floatingip_v2" "frontdoor" {
  count = local.new_floating_ip ? 1 : 0

  pool        = var.floating_ip_pool
  description = "Front door ${local.fqdn}"
}

resource "openstack_networking_floatingip_associate_v2" "frontdoor" {
  count = var.floating_ip != null || var.floating_ip_pool != null ? 1 : 0

  floating_ip = local.floating_ip
  port_id     = openstack_networking_port_v2.frontdoor.id
}

resource "openstack_dns_recordset_v2" "a" {
  zone_id = data.openstack_dns_zone_v2.frontdoor.id
  name    = "${local.fqdn}."
  type    = "A"
  ttl     = var.dns_ttl
  records = [local.public_ipv4]
}

resource "openstack_dns_recordset_v2" "aaaa" {
  count = var.ipv6 ? 1 : 0

  zone_id = data.openstack_dns_zone_v2.frontdoor.id
  name    = "${local.fqdn}."
  type    = "AAAA"
  ttl     = var.dns_ttl
  records = local.port_ipv6
}
