# Lets the relays learn their own public IP: OCI's instance metadata service does not know it,
# and Terraform cannot write it into the user data of the instance it is assigned with. The
# relays call GetVnic as instance principals (templates/public-ip.py); this is the only
# permission they get.

locals {
  # The root compartment is "tenancy" in policy statements, any other one "compartment id".
  policy_scope = startswith(var.compartment_ocid, "ocid1.tenancy.") ? "tenancy" : "compartment id ${var.compartment_ocid}"
}

resource "oci_identity_dynamic_group" "relays" {
  compartment_id = var.tenancy_ocid
  name           = "${var.name}-relays"
  description    = "turnd relay VMs (every instance in the relays' compartment)"
  matching_rule  = "ALL {instance.compartment.id = '${var.compartment_ocid}'}"
}

resource "oci_identity_policy" "relays_read_vnics" {
  compartment_id = var.compartment_ocid
  name           = "${var.name}-relays-read-vnics"
  description    = "turnd relays read their VNIC to learn their public IP"
  statements = [
    "Allow dynamic-group ${oci_identity_dynamic_group.relays.name} to read vnics in ${local.policy_scope}",
  ]
}
