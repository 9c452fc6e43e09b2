variable "environment" {
  description = "Name of the environment; plans record it so that another environment refuses them."
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

variable "name" {
  description = "The hub's host name (a DNS label)."
  type        = string
}

variable "domain" {
  description = "The domain of the hub's name."
  type        = string
}

variable "dns_zone" {
  description = "The Designate zone for the hub's records."
  type        = string
}

variable "ipv6" {
  description = "Publish an AAAA record and open the security group to IPv6."
  type        = bool
  default     = true
}

variable "image_name" {
  description = "Image the hub boots from (the newest of that name)."
  type        = string
}

variable "flavor_name" {
  description = "Compute flavor."
  type        = string
}

variable "key_pair" {
  description = "Compute key pair for ssh_user."
  type        = string
}

variable "network_name" {
  description = "Network of the hub's port."
  type        = string
}

variable "ssh_user" {
  description = "User operators and Ansible log in as."
  type        = string
}

variable "disk_id_prefix" {
  description = "Prefix of the volumes' names under /dev/disk/by-id/."
  type        = string
}

variable "volume_size_gb" {
  description = "Size of each ZFS volume in GB, when created here."
  type        = number
}

variable "existing_volume_ids" {
  description = "Two existing volumes to adopt, or none to create them here."
  type        = list(string)
  default     = []
}

variable "floating_ip" {
  description = "An existing floating IP to adopt, or null."
  type        = string
  default     = null
}

variable "floating_ip_pool" {
  description = "Pool for a new floating IP when none is adopted; null for none."
  type        = string
  default     = null
}
