variable "environment" {
  description = "Name of the environment (the directory under envs/); tags resources and binds plans."
  type        = string

  validation {
    condition     = can(regex("^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$", var.environment))
    error_message = "The environment must be lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment_type" {
  description = "dev or prod: becomes an inventory group of the hub."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment_type)
    error_message = "The environment_type must be dev or prod."
  }
}

variable "name" {
  description = "The hub's host name, a DNS label (e.g. brave-otter or hub)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "The name must be a DNS label: lower-case letters, digits and '-'."
  }
}

variable "domain" {
  description = "The domain the hub's name lives under (e.g. callysto.farm)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+$", var.domain))
    error_message = "The domain must be a dotted DNS name such as callysto.ca, without a trailing dot."
  }
}

variable "dns_zone" {
  description = "The Designate zone holding the hub's A/AAAA records (a trailing dot is optional)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+(\\.[a-z0-9-]+)+\\.?$", var.dns_zone))
    error_message = "The dns_zone must be a DNS zone name such as callysto.ca."
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

variable "image_name" {
  description = "Name of the image the hub boots from; the most recent image of that name is used."
  type        = string

  validation {
    condition     = length(var.image_name) > 0
    error_message = "The image_name must not be empty."
  }
}

variable "flavor_name" {
  description = "Compute flavor of the hub (e.g. m1.large)."
  type        = string

  validation {
    condition     = length(var.flavor_name) > 0
    error_message = "The flavor_name must not be empty."
  }
}

variable "key_pair" {
  description = "Name of the compute key pair whose public key may log in as ssh_user."
  type        = string

  validation {
    condition     = length(var.key_pair) > 0
    error_message = "The key_pair must not be empty."
  }
}

variable "network_name" {
  description = "Name of the network the hub's port is created on."
  type        = string

  validation {
    condition     = length(var.network_name) > 0
    error_message = "The network_name must not be empty."
  }
}

variable "ssh_user" {
  description = "The user operators and Ansible log in as; cloud-init creates it."
  type        = string
  default     = "ptty2u"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "The ssh_user must be a valid Unix user name."
  }
}

variable "disk_id_prefix" {
  description = "What the guest puts before the first 20 characters of a volume ID under /dev/disk/by-id/ (virtio-, or scsi-0QEMU_QEMU_HARDDISK_ on virtio-scsi clouds)."
  type        = string
  default     = "virtio-"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]*$", var.disk_id_prefix))
    error_message = "The disk_id_prefix may hold letters, digits, '_' and '-' only."
  }
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
