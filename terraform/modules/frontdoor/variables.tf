variable "environment" {
  description = "Name of the environment (the directory under envs/)."
  type        = string
}

variable "environment_type" {
  description = "dev or prod: becomes an inventory group of the front door."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment_type)
    error_message = "The environment_type must be dev or prod."
  }
}

variable "name" {
  description = "The front door's DNS label; its name is <name>.<host_domain>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "The front door's name must be a DNS label (lower-case letters, digits and '-')."
  }
}

variable "host_domain" {
  description = "The domain of the environment's hosts (the hub's host.domain)."
  type        = string
}

variable "openstack" {
  description = "The hub's openstack settings (modules/hub: openstack); the front door boots the same image."
  type = object({
    dns_zone       = string
    image_name     = string
    flavor_name    = string
    key_pair       = string
    ssh_user       = string
    network_name   = string
    disk_id_prefix = string
  })
}

variable "dns_ttl" {
  description = "TTL in seconds of the front door's DNS records."
  type        = number
  default     = 300
}

variable "ipv6" {
  description = "Also publish an AAAA record and open the security group to IPv6."
  type        = bool
  default     = true
}

variable "floating_ip" {
  description = "An existing floating IP address to adopt; never destroyed by Terraform."
  type        = string
  default     = null
}

variable "floating_ip_pool" {
  description = "Pool to allocate a new floating IP from when floating_ip is not given; null for none."
  type        = string
  default     = null
}
