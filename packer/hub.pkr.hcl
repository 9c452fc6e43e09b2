# The hub image: a stock cloud image with the packages and OpenZFS every hub needs, provisioned by
# playbooks/packer-hub.yml. Every value comes from the environment's env.yaml: `callysto packer
# build hub --env ENV` writes them to a variables file, so nothing site-specific lives here.
#
# The image keeps one name (env.yaml cloud.image) on every build and carries its build date in its
# metadata; Terraform boots the most recent image of that name, so a new build takes effect on the
# next `terraform apply` of a hub, and older builds stay available to roll back to.

variable "cloud" {
  type        = string
  description = "Entry of clouds.yaml holding the credentials; empty: the OS_* variables."
}

variable "region" {
  type        = string
  description = "OpenStack region of the build VM and the image."
}

variable "flavor" {
  type        = string
  description = "Flavor of the build VM."
}

variable "source_image" {
  type        = string
  description = "Name of the stock image the hub image starts from."
}

variable "source_image_user" {
  type        = string
  description = "Login of the stock image, which Packer and Ansible connect as."
}

variable "networks" {
  type        = list(string)
  description = "Network UUIDs of the build VM; empty: the cloud's default network."
}

variable "floating_ip_network" {
  type        = string
  description = "External network to take a floating IP from; empty: none."
}

variable "security_groups" {
  type        = list(string)
  description = "Security groups of the build VM; one must let SSH in from here."
}

variable "ssh_ip_version" {
  type        = string
  description = "IP version (4 or 6) Packer reaches the build VM with."
}

variable "image_name" {
  type        = string
  description = "Name of the image; Terraform boots the most recent one of this name."
}

variable "hub_ssh_user" {
  type        = string
  description = "Login that hubs booted from the image give the operators' key pair."
}

variable "playbook" {
  type        = string
  description = "Path of playbooks/packer-hub.yml."
}

variable "ansible_playbook" {
  type        = string
  description = "Path of the ansible-playbook program to provision with."
}

variable "manifest" {
  type        = string
  description = "Where Packer writes what it built (the image ID), as JSON."
}

locals {
  build_date = formatdate("YYYY-MM-DD'T'hh:mm:ssZ", timestamp())
}

source "openstack" "hub" {
  cloud               = var.cloud
  region              = var.region
  flavor              = var.flavor
  source_image_name   = var.source_image
  ssh_username        = var.source_image_user
  networks            = var.networks
  floating_ip_network = var.floating_ip_network
  security_groups     = var.security_groups
  ssh_ip_version      = var.ssh_ip_version
  image_name          = var.image_name
  metadata = {
    build_date   = local.build_date
    source_image = var.source_image
    built_by     = "callysto packer build hub"
  }
}

build {
  sources = ["source.openstack.hub"]

  provisioner "ansible" {
    command       = var.ansible_playbook
    playbook_file = var.playbook
    user          = var.source_image_user
    # Ansible reaches the build VM directly, as Packer does, instead of through Packer's own SSH
    # proxy, whose host key algorithm current OpenSSH clients refuse.
    use_proxy = false
    # The build VM is new on every build: there is no known host key to check it against.
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
    extra_arguments  = ["--extra-vars", jsonencode({ hub_ssh_user = var.hub_ssh_user })]
  }

  post-processor "manifest" {
    output     = var.manifest
    strip_path = true
    custom_data = {
      image_name = var.image_name
      build_date = local.build_date
    }
  }
}
