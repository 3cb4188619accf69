# The network: VCN 10.0.0.0/16, one public subnet, an Internet gateway and the security list
# that decides what reaches the relays.

locals {
  vcn_cidr = "10.0.0.0/16"
  anywhere = "0.0.0.0/0"

  # IANA protocol numbers, as OCI security rules spell protocols (ICMP, 1, is written out).
  tcp = "6"
  udp = "17"

  # Everything the Internet may reach, which is exactly what templates/turnserver.toml.tftpl
  # serves: STUN/TURN on 3478 (UDP, and TCP since server.tcp defaults to true), the relay
  # ports, and the credentials API when it is rendered. The relay range is opened for TCP too:
  # turnd serves RFC 6062 TCP relays when a TCP client asks for one, and a peer's connection
  # to such a relay arrives on a port of that range (ConnectionAttempt). No TURN over TLS
  # (5349, 443): the relays have no certificate. SSH is separate (admin_cidr only).
  public_ingress = concat(local.turn_ingress, local.api_ingress)
  turn_ingress = [ # written out one by one in the security list (order matters there)
    { description = "STUN/TURN over UDP", protocol = local.udp, min = 3478, max = 3478 },
    { description = "STUN/TURN over TCP", protocol = local.tcp, min = 3478, max = 3478 },
    { description = "TURN relay ports (UDP)", protocol = local.udp, min = var.relay_min_port, max = var.relay_max_port },
    { description = "TURN relay ports (TCP, RFC 6062)", protocol = local.tcp, min = var.relay_min_port, max = var.relay_max_port },
  ]
  api_ingress = var.enable_api ? [{ description = "turnd credentials API", protocol = local.tcp, min = var.api_port, max = var.api_port }] : []

  # ICMP errors from anywhere: destination unreachable (3, every code: fragmentation needed
  # for path MTU discovery, and port/host unreachable) and time exceeded (11). turnd relays
  # exactly these two ICMPv4 types about relayed datagrams to its clients (RFC 8656 section 11,
  # IP_RECVERR on the relay sockets), so a peer's "port unreachable" must reach the VM.
  icmp_ingress = [
    { description = "ICMP destination unreachable (path MTU discovery, relayed to clients)", type = 3 },
    { description = "ICMP time exceeded (relayed to clients)", type = 11 },
  ]
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

  # The ICMP errors of local.icmp_ingress, written out (checkov reads a dynamic ICMP rule as
  # one open to every port).
  ingress_security_rules {
    description = local.icmp_ingress[0].description
    source      = local.anywhere
    protocol    = "1" # ICMP
    stateless   = true

    icmp_options {
      type = local.icmp_ingress[0].type
    }
  }

  ingress_security_rules {
    description = local.icmp_ingress[1].description
    source      = local.anywhere
    protocol    = "1" # ICMP
    stateless   = true

    icmp_options {
      type = local.icmp_ingress[1].type
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

  # local.turn_ingress, one block per entry, and local.api_ingress. Written out rather than one
  # dynamic block with dynamic tcp_options/udp_options inside: checkov expands such nested
  # blocks into a shape its own port checks (CKV_OCI_19, CKV_OCI_20) crash on.
  ingress_security_rules {
    description = local.turn_ingress[0].description
    source      = local.anywhere
    protocol    = local.udp
    stateless   = true

    udp_options {
      min = local.turn_ingress[0].min
      max = local.turn_ingress[0].max
    }
  }

  ingress_security_rules {
    description = local.turn_ingress[1].description
    source      = local.anywhere
    protocol    = local.tcp
    stateless   = true

    tcp_options {
      min = local.turn_ingress[1].min
      max = local.turn_ingress[1].max
    }
  }

  ingress_security_rules {
    description = local.turn_ingress[2].description
    source      = local.anywhere
    protocol    = local.udp
    stateless   = true

    udp_options {
      min = local.turn_ingress[2].min
      max = local.turn_ingress[2].max
    }
  }

  ingress_security_rules {
    description = local.turn_ingress[3].description
    source      = local.anywhere
    protocol    = local.tcp
    stateless   = true

    tcp_options {
      min = local.turn_ingress[3].min
      max = local.turn_ingress[3].max
    }
  }

  dynamic "ingress_security_rules" {
    for_each = local.api_ingress
    content {
      description = ingress_security_rules.value.description
      source      = local.anywhere
      protocol    = local.tcp
      stateless   = true

      tcp_options {
        min = ingress_security_rules.value.min
        max = ingress_security_rules.value.max
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
