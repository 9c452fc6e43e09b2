# What env.yaml says, as callysto writes it into terraform.tfvars.json. The objects pass through
# untyped: modules/hub declares (and checks) their shape, once.

variable "environment" {
  description = "Name of the environment; plans record it so that another environment refuses them."
  type        = string
}

variable "environment_type" {
  description = "dev or prod; a prod hub adopts its volumes and floating IP (see main.tf)."
  type        = string
}

variable "cloud" {
  description = "Entry of clouds.yaml holding the credentials."
  type        = string
}

variable "region" {
  description = "OpenStack region."
  type        = string
}

variable "host" {
  description = "The environment's name and domain (env.yaml host:); each hub is <its name>.<domain>."
}

variable "openstack" {
  description = "The image, flavor, key pair, network, DNS zone, SSH user and disk ID prefix the hub uses (modules/hub: openstack)."
}

variable "ipv6" {
  description = "Publish an AAAA record and open the security group to IPv6."
  type        = bool
  default     = true
}

variable "volume_size_gb" {
  description = "Size of each ZFS volume in GB, when created here."
  type        = number
}

variable "hubs" {
  description = "The hubs, by name (env.yaml hubs:, else host.name): for each, two existing volumes to adopt (a prod hub's) or none to create them here, and an existing floating IP to adopt or null."
  type = map(object({
    existing_volume_ids = list(string)
    floating_ip         = string
  }))
}

variable "floating_ip_pool" {
  description = "Pool for a new floating IP when none is adopted; null for none (never for prod)."
  type        = string
  default     = null
}

variable "frontdoor" {
  description = "The front door (the sign-in proxy's own host): its DNS label and an existing floating IP to adopt, or null; null: no front door, the hub runs the proxy."
  type = object({
    name        = string
    floating_ip = string
  })
  default = null
}
