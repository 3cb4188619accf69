terraform {
  # 1.9: input validation may refer to other variables (the free-tier totals below).
  required_version = ">= 1.9.0"

  required_providers {
    oci = {
      source  = "oracle/oci"
      version = ">= 7.19.0, < 8.0.0"
    }
  }
}

# Credentials come from the OCI CLI config file (~/.oci/config), profile `oci_config_profile`;
# `oci setup config` writes it. Nothing secret is kept in this configuration.
provider "oci" {
  region              = var.region
  config_file_profile = var.oci_config_profile
}
