"""A stand-in for the OpenStack cloud: a Terraform provider, written with the `tf` framework, that
serves the resources and data sources of terraform/modules/hub under the real provider's names and
attributes, and keeps every object in a JSON file the tests read."""
