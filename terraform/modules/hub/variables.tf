variable "environment" {
  description = "Name of the environment (the directory under envs/); tags resources and binds plans."
  type        = string

  validation {
    condition     = can(regex("^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$", var.environment))
    error_message = "The environment must be lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment_type" {
  description = "dev or prod: becomes an inventory group of the hub. A prod hub only adopts its volumes and floating IP (see main.tf)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment_type)
    error_message = "The environment_type must be dev or prod."
  }
}

variable "host" {
  description = "The hub's name, <name>.<domain> (e.g. brave-otter and callysto.farm, or hub and callysto.ca)."
  type = object({
    name   = string
    domain = string
  })

  validation {
    condition = (
      can(regex("^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", var.host.name)) &&
      can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+$", var.host.domain))
    )
    error_message = "The host needs a DNS label as its name (lower-case letters, digits and '-') and a dotted DNS name such as callysto.ca, without a trailing dot, as its domain."
  }
}

variable "openstack" {
  description = <<-EOT
    What the hub uses of its OpenStack cloud. dns_zone: the Designate zone holding its A/AAAA records (a
    trailing dot is optional). image_name: the image it boots from, the most recent of that name.
    flavor_name: its compute flavor. key_pair: the compute key pair whose public key may log in as
    ssh_user, the user cloud-init creates for operators and Ansible. network_name: the network its
    port is created on. disk_id_prefix: what the guest puts before the first 20 characters of a
    volume ID under /dev/disk/by-id/ (virtio-, or scsi-0QEMU_QEMU_HARDDISK_ on virtio-scsi clouds).
  EOT
  type = object({
    dns_zone       = string
    image_name     = string
    flavor_name    = string
    key_pair       = string
    ssh_user       = string
    network_name   = string
    disk_id_prefix = string
  })

  validation {
    condition = (
      can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+\\.?$", var.openstack.dns_zone)) &&
      alltrue([for name in [var.openstack.image_name, var.openstack.flavor_name, var.openstack.key_pair, var.openstack.network_name] : length(name) > 0]) &&
      can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.openstack.ssh_user)) &&
      can(regex("^[A-Za-z0-9_-]*$", var.openstack.disk_id_prefix))
    )
    error_message = "The openstack settings need a DNS zone name such as callysto.ca, non-empty image, flavor, key pair and network names, a Unix user name as ssh_user, and letters, digits, '_' and '-' only in disk_id_prefix."
  }
}

variable "dns_ttl" {
  description = "TTL in seconds of the hub's DNS records."
  type        = number
  default     = 300

  validation {
    condition     = var.dns_ttl >= 60 && var.dns_ttl <= 86400
    error_message = "The dns_ttl must be between 60 and 86400 seconds."
  }
}

variable "ipv6" {
  description = "Also publish an AAAA record and open the security group to IPv6."
  type        = bool
  default     = true
}

variable "volume_size_gb" {
  description = "Size in GB of each of the two ZFS volumes, when they are created here."
  type        = number
  default     = 25

  validation {
    condition     = var.volume_size_gb >= 1 && floor(var.volume_size_gb) == var.volume_size_gb
    error_message = "The volume_size_gb must be a whole number of at least 1."
  }
}

variable "existing_volume_ids" {
  description = "IDs of two existing volumes to adopt as the ZFS mirror; empty to create two volumes here. Adopted volumes are never destroyed by Terraform."
  type        = list(string)
  default     = []

  validation {
    condition = (
      contains([0, 2], length(var.existing_volume_ids)) &&
      alltrue([for id in var.existing_volume_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", id))])
    )
    error_message = "The existing_volume_ids must list exactly two volume UUIDs, or none."
  }
}

variable "floating_ip" {
  description = "An existing floating IP address to adopt and associate with the hub; never destroyed by Terraform."
  type        = string
  default     = null

  validation {
    condition     = var.floating_ip == null || can(cidrhost("${coalesce(var.floating_ip, "0.0.0.0")}/32", 0))
    error_message = "The floating_ip must be an IPv4 address."
  }
}

variable "floating_ip_pool" {
  description = "Pool to allocate a new floating IP from when floating_ip is not given; null for no floating IP."
  type        = string
  default     = null
}
