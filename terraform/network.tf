# The network: VCN 10.0.0.0/16, one public subnet, an Internet gateway and the security list
# that decides what reaches the relays.

locals {
  vcn_cidr = "10.0.0.0/16"
  anywhere = "0.0.0.0/0"

  # IANA protocol numbers, as OCI security rules spell protocols (ICMP, 1, is written out).
  tcp = "6"
  udp = "17"

  # Everything the Internet may reach: STUN/TURN, TURN over TLS, the relay ports, and the
  # optional ports. SSH is separate (admin_cidr only).
  public_ingress = concat(
    [
      { description = "STUN/TURN over UDP", protocol = local.udp, min = 3478, max = 3478 },
      { description = "STUN/TURN over TCP", protocol = local.tcp, min = 3478, max = 3478 },
      { description = "TURN over TLS", protocol = local.tcp, min = 5349, max = 5349 },
      { description = "TURN relay ports", protocol = local.udp, min = var.relay_min_port, max = var.relay_max_port },
    ],
    var.enable_tls_443 ? [{ description = "TURN over TLS on 443", protocol = local.tcp, min = 443, max = 443 }] : [],
    var.enable_api ? [{ description = "turnd credentials API", protocol = local.tcp, min = var.api_port, max = var.api_port }] : [],
  )
}

resource "oci_core_vcn" "turnd" {
  compartment_id = var.compartment_ocid
  cidr_blocks    = [local.vcn_cidr]
  display_name   = "${var.name}-vcn"
  dns_label      = var.name
}

resource "oci_core_internet_gateway" "turnd" {
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.turnd.id
  display_name   = "${var.name}-igw"
  enabled        = true
}

resource "oci_core_route_table" "turnd" {
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.turnd.id
  display_name   = "${var.name}-routes"

  route_rules {
    description       = "Everything outside the VCN through the Internet gateway"
    destination       = local.anywhere
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.turnd.id
  }
}

# Every ingress rule is stateless, answered by a stateless egress rule from the same ports: a
# relay carries many UDP flows, and stateless rules keep them out of OCI's per-VNIC connection
# tracking table (whose size depends on the shape). Connections the relays open themselves
# (relaying to peers aside) go out through the one stateful egress rule, which tracks them.
resource "oci_core_security_list" "turnd" {
  compartment_id = var.compartment_ocid
  vcn_id         = oci_core_vcn.turnd.id
  display_name   = "${var.name}-relays"

  # Path MTU discovery ("fragmentation needed") from anywhere, as OCI's default list has it.
  ingress_security_rules {
    description = "ICMP fragmentation needed (path MTU discovery)"
    source      = local.anywhere
    protocol    = "1" # ICMP
    stateless   = true

    icmp_options {
      type = 3
      code = 4
    }
  }

  ingress_security_rules {
    description = "SSH from the administrators only"
    source      = var.admin_cidr
    protocol    = local.tcp
    stateless   = true

    tcp_options {
      min = 22
      max = 22
    }
  }

  dynamic "ingress_security_rules" {
    for_each = local.public_ingress
    content {
      description = ingress_security_rules.value.description
      source      = local.anywhere
      protocol    = ingress_security_rules.value.protocol
      stateless   = true

      dynamic "tcp_options" {
        for_each = ingress_security_rules.value.protocol == local.tcp ? [ingress_security_rules.value] : []
        content {
          min = tcp_options.value.min
          max = tcp_options.value.max
        }
      }

      dynamic "udp_options" {
        for_each = ingress_security_rules.value.protocol == local.udp ? [ingress_security_rules.value] : []
        content {
          min = udp_options.value.min
          max = udp_options.value.max
        }
      }
    }
  }

  # The answers to the rules above, and relayed traffic leaving the relay ports.
  egress_security_rules {
    description = "From SSH to the administrators"
    destination = var.admin_cidr
    protocol    = local.tcp
    stateless   = true

    tcp_options {
      source_port_range {
        min = 22
        max = 22
      }
    }
  }

  dynamic "egress_security_rules" {
    for_each = local.public_ingress
    content {
      description = "From ${egress_security_rules.value.description}"
      destination = local.anywhere
      protocol    = egress_security_rules.value.protocol
      stateless   = true

      dynamic "tcp_options" {
        for_each = egress_security_rules.value.protocol == local.tcp ? [egress_security_rules.value] : []
        content {
          source_port_range {
            min = tcp_options.value.min
            max = tcp_options.value.max
          }
        }
      }

      dynamic "udp_options" {
        for_each = egress_security_rules.value.protocol == local.udp ? [egress_security_rules.value] : []
        content {
          source_port_range {
            min = udp_options.value.min
            max = udp_options.value.max
          }
        }
      }
    }
  }

  # Connections the relays open: package downloads, the OCI API (templates/public-ip.py).
  egress_security_rules {
    description = "Outgoing connections (tracked, so their answers come back)"
    destination = local.anywhere
    protocol    = "all"
    stateless   = false
  }
}

resource "oci_core_subnet" "turnd" {
  compartment_id             = var.compartment_ocid
  vcn_id                     = oci_core_vcn.turnd.id
  cidr_block                 = var.subnet_cidr
  display_name               = "${var.name}-public"
  dns_label                  = "relays"
  route_table_id             = oci_core_route_table.turnd.id
  security_list_ids          = [oci_core_security_list.turnd.id]
  prohibit_public_ip_on_vnic = false
}
