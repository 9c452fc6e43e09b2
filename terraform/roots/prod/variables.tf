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
  description = "The two existing volumes of the ZFS mirror, adopted and never destroyed here."
  type        = list(string)

  validation {
    condition     = length(var.existing_volume_ids) == 2
    error_message = "A prod environment adopts its two existing volumes: set hub.existing_volumes in env.yaml."
  }
}

variable "floating_ip" {
  description = "The existing floating IP of the hub, adopted and never released here."
  type        = string

  validation {
    condition     = var.floating_ip != null
    error_message = "A prod environment adopts its existing floating IP: set hub.floating_ip in env.yaml."
  }
}
