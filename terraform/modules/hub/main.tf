# One JupyterHub: an instance on its own port, two volumes for the ZFS mirror `tank`, a security
# group, an optional floating IP and the hub's DNS records. Volumes and a floating IP given as
# existing IDs/addresses are adopted, not managed: destroying the hub leaves them in place.

locals {
  fqdn     = "${var.host.name}.${var.host.domain}"
  dns_zone = "${trimsuffix(var.openstack.dns_zone, ".")}."

  # A prod hub only adopts: Terraform never creates, so never destroys, its volumes or its
  # floating IP. A prod that names no volumes or address stops the plan here, with this reason,
  # whoever runs Terraform (env.yaml's schema refuses it first; Terraform 1.0's validation blocks
  # cannot compare two variables, so the failing conversion is the check).
  prod = var.environment_type == "prod"
  prod_adopts = (
    !local.prod || (length(var.existing_volume_ids) == 2 && var.floating_ip != null)
    ? true
    : tobool("A prod environment adopts its two existing volumes and its floating IP: set hub.existing_volumes and hub.floating_ip in env.yaml.")
  )
  adopt_volumes = local.prod_adopts && (local.prod || length(var.existing_volume_ids) == 2)
  volume_ids = (
    local.adopt_volumes
    ? var.existing_volume_ids
    : openstack_blockstorage_volume_v3.zfs[*].id
  )

  # The one place the guest's device paths are computed: the hypervisor hands the guest the first
  # 20 characters of the volume ID as the disk serial, so the by-id name survives reboots and
  # device renumbering, which /dev/vdb and /dev/vdc do not.
  zfs_disks = [for id in local.volume_ids : "/dev/disk/by-id/${var.openstack.disk_id_prefix}${substr(id, 0, 20)}"]

  new_floating_ip = !local.prod && var.floating_ip == null && var.floating_ip_pool != null
  floating_ip = (
    var.floating_ip != null ? var.floating_ip
    : local.new_floating_ip ? openstack_networking_floatingip_v2.hub[0].address
    : null
  )
  # Addresses come from the hub's port, not the instance, so a rebuilt hub keeps its addresses
  # and its DNS records do not change.
  port_ipv4   = [for ip in openstack_networking_port_v2.hub.all_fixed_ips : ip if !can(regex(":", ip))]
  port_ipv6   = [for ip in openstack_networking_port_v2.hub.all_fixed_ips : ip if can(regex(":", ip))]
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
      # Neutron names ICMP for IPv6 differently.
      protocol = pair[1].protocol == "icmp" && pair[0] == "IPv6" ? "ipv6-icmp" : pair[1].protocol
      port     = pair[1].port
      prefix   = pair[0] == "IPv4" ? "0.0.0.0/0" : "::/0"
    }
  }

  user_data = join("\n", ["#cloud-config", yamlencode({
    hostname          = var.host.name
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

data "openstack_images_image_v2" "hub" {
  name        = var.openstack.image_name
  most_recent = true
}

data "openstack_networking_network_v2" "hub" {
  name = var.openstack.network_name
}

data "openstack_dns_zone_v2" "hub" {
  name = local.dns_zone
}

resource "openstack_networking_secgroup_v2" "hub" {
  name        = local.fqdn
  description = "JupyterHub ${local.fqdn}: ssh, http, https and ping (environment ${var.environment})"
}

resource "openstack_networking_secgroup_rule_v2" "ingress" {
  for_each = local.ingress_rules

  security_group_id = openstack_networking_secgroup_v2.hub.id
  direction         = "ingress"
  ethertype         = each.value.ethertype
  protocol          = each.value.protocol
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.prefix
}

# The hub's own port: the floating IP is associated with it, so replacing the instance keeps
# the addresses (and the DNS records that point at them).
resource "openstack_networking_port_v2" "hub" {
  name               = local.fqdn
  network_id         = data.openstack_networking_network_v2.hub.id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.hub.id]
}

resource "openstack_compute_instance_v2" "hub" {
  name        = local.fqdn
  image_id    = data.openstack_images_image_v2.hub.id
  flavor_name = var.openstack.flavor_name
  key_pair    = var.openstack.key_pair
  user_data   = local.user_data

  metadata = {
    environment = var.environment
    role        = "hub"
  }

  network {
    port = openstack_networking_port_v2.hub.id
  }

  lifecycle {
    # A newer image or cloud-config must not replace the hub behind an operator's back:
    # 'callysto terraform hub rebuild' does that on purpose, and keeps the volumes.
    ignore_changes = [image_id, user_data]
  }
}

resource "openstack_blockstorage_volume_v3" "zfs" {
  count = local.adopt_volumes ? 0 : 2

  name        = "${local.fqdn}-zfs-${count.index + 1}"
  description = "ZFS mirror half ${count.index + 1} of pool tank on ${local.fqdn}: students' homes"
  size        = var.volume_size_gb
}

# Attached one after the other, so the guest sees them in the same order every time.
resource "openstack_compute_volume_attach_v2" "zfs_1" {
  instance_id = openstack_compute_instance_v2.hub.id
  volume_id   = local.volume_ids[0]
}

resource "openstack_compute_volume_attach_v2" "zfs_2" {
  instance_id = openstack_compute_instance_v2.hub.id
  volume_id   = local.volume_ids[1]

  depends_on = [openstack_compute_volume_attach_v2.zfs_1]
}

resource "openstack_networking_floatingip_v2" "hub" {
  count = local.new_floating_ip ? 1 : 0

  pool        = var.floating_ip_pool
  description = "JupyterHub ${local.fqdn}"
}

resource "openstack_networking_floatingip_associate_v2" "hub" {
  count = var.floating_ip != null || var.floating_ip_pool != null ? 1 : 0

  floating_ip = local.floating_ip
  port_id     = openstack_networking_port_v2.hub.id
}

resource "openstack_dns_recordset_v2" "a" {
  zone_id = data.openstack_dns_zone_v2.hub.id
  name    = "${local.fqdn}."
  type    = "A"
  ttl     = var.dns_ttl
  records = [local.public_ipv4]
}

resource "openstack_dns_recordset_v2" "aaaa" {
  count = var.ipv6 ? 1 : 0

  zone_id = data.openstack_dns_zone_v2.hub.id
  name    = "${local.fqdn}."
  type    = "AAAA"
  ttl     = var.dns_ttl
  records = local.port_ipv6
}
