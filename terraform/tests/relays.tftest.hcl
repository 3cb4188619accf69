# What the configuration creates, checked against the oracle/oci 7.19.0 schema with a mocked
# provider (no cloud account, no network): the network, the ports it opens, the relays, their
# user data, and the Always Free limits. Run by scripts/test-infra.

mock_provider "oci" {
  override_data {
    target = data.oci_identity_availability_domains.all
    values = {
      availability_domains = [
        { compartment_id = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy", id = "ad1", name = "Uocm:EU-FRANKFURT-1-AD-1" },
        { compartment_id = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy", id = "ad2", name = "Uocm:EU-FRANKFURT-1-AD-2" },
      ]
    }
  }

  override_data {
    target = data.oci_core_images.ubuntu
    values = {
      images = [
        { id = "ocid1.image.oc1.eu-frankfurt-1.ubuntu2204aarch64", display_name = "Canonical-Ubuntu-22.04-aarch64-2025.01.31-0", operating_system = "Canonical Ubuntu", operating_system_version = "22.04" },
      ]
    }
  }

  override_resource {
    target = oci_core_instance.relay
    values = { public_ip = "203.0.113.10" }
  }
}

variables {
  tenancy_ocid        = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy"
  compartment_ocid    = "ocid1.compartment.oc1..aaaaaaaaexamplecompartment"
  region              = "eu-frankfurt-1"
  admin_cidr          = "198.51.100.7/32"
  ssh_public_key      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample test"
  turnd_binary_url    = "https://downloads.example.invalid/turnd-aarch64"
  turnd_binary_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  turn_secret         = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f"
}

run "network" {
  assert {
    condition     = oci_core_vcn.turnd.cidr_blocks == tolist(["10.0.0.0/16"])
    error_message = "The VCN must be 10.0.0.0/16."
  }
  assert {
    condition     = oci_core_subnet.turnd.cidr_block == "10.0.1.0/24" && oci_core_subnet.turnd.prohibit_public_ip_on_vnic == false
    error_message = "The relays' subnet must be the public 10.0.1.0/24."
  }
  assert {
    condition     = oci_core_subnet.turnd.route_table_id == oci_core_route_table.turnd.id && oci_core_subnet.turnd.security_list_ids == toset([oci_core_security_list.turnd.id])
    error_message = "The subnet must use the route table and the security list."
  }
  assert {
    condition     = one(oci_core_route_table.turnd.route_rules).destination == "0.0.0.0/0" && one(oci_core_route_table.turnd.route_rules).network_entity_id == oci_core_internet_gateway.turnd.id
    error_message = "The default route must go through the Internet gateway."
  }
  assert {
    condition     = oci_core_internet_gateway.turnd.enabled == true
    error_message = "The Internet gateway must be enabled."
  }
}

run "default_ports" {
  # The security list opens what the rendered turnserver.toml serves, and nothing else:
  # STUN/TURN on UDP and TCP 3478, the relay range on UDP and on TCP (RFC 6062 relays), the
  # ICMP errors turnd relays (destination unreachable, every code, and time exceeded) to the
  # Internet, and SSH to admin_cidr. No TURN over TLS: nothing serves 5349 or 443.
  assert {
    condition = toset([
      for r in oci_core_security_list.turnd.ingress_security_rules :
      format("%s %s %s-%s", r.source, r.protocol,
        try(one(r.tcp_options).min, one(r.udp_options).min, one(r.icmp_options).type),
      try(one(r.tcp_options).max, one(r.udp_options).max, coalesce(one(r.icmp_options).code, "any")))
      ]) == toset([
      "198.51.100.7/32 6 22-22",
      "0.0.0.0/0 1 3-any",
      "0.0.0.0/0 1 11-any",
      "0.0.0.0/0 17 3478-3478",
      "0.0.0.0/0 6 3478-3478",
      "0.0.0.0/0 17 49152-65535",
      "0.0.0.0/0 6 49152-65535",
    ])
    error_message = "The default ingress rules must be exactly SSH from admin_cidr, ICMP 3 and 11 (all codes), UDP+TCP 3478 and UDP+TCP 49152-65535."
  }
  assert {
    condition = alltrue([
      for r in oci_core_security_list.turnd.ingress_security_rules :
      r.source == var.admin_cidr || !(contains(["all", "6"], r.protocol) && try(one(r.tcp_options).min, 1) <= 22 && try(one(r.tcp_options).max, 65535) >= 22)
    ])
    error_message = "SSH (TCP 22) must be reachable from admin_cidr only."
  }
  assert {
    condition     = alltrue([for r in oci_core_security_list.turnd.ingress_security_rules : r.stateless == true])
    error_message = "Ingress rules are stateless (relay flows stay out of OCI's connection tracking)."
  }
  assert {
    condition = toset([
      for r in oci_core_security_list.turnd.egress_security_rules :
      format("%s %s %s from %s-%s", r.stateless ? "stateless" : "stateful", r.destination, r.protocol,
        try(one(one(r.tcp_options).source_port_range).min, one(one(r.udp_options).source_port_range).min, "any"),
      try(one(one(r.tcp_options).source_port_range).max, one(one(r.udp_options).source_port_range).max, "any"))
      ]) == toset([
      "stateless 198.51.100.7/32 6 from 22-22",
      "stateless 0.0.0.0/0 17 from 3478-3478",
      "stateless 0.0.0.0/0 6 from 3478-3478",
      "stateless 0.0.0.0/0 17 from 49152-65535",
      "stateless 0.0.0.0/0 6 from 49152-65535",
      "stateful 0.0.0.0/0 all from any-any",
    ])
    error_message = "Each stateless ingress rule has its stateless answer; everything else leaves through one tracked rule."
  }
  assert {
    condition     = length(output.credentials_api_urls) == 0
    error_message = "No credentials API URL without enable_api."
  }
}

run "credentials_api" {
  # enable_api renders the [api] listener turnd serves (private IP, api_port, the key hash) and
  # opens that port: one more ingress rule and its answer, and the URL output names it.
  variables {
    enable_api   = true
    api_port     = 8443
    api_key_hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  }
  assert {
    condition     = length(oci_core_security_list.turnd.ingress_security_rules) == 8 && length(oci_core_security_list.turnd.egress_security_rules) == 7
    error_message = "The API port adds exactly one ingress rule and its answer."
  }
  assert {
    condition = length([
      for r in oci_core_security_list.turnd.ingress_security_rules : r
      if r.source == "0.0.0.0/0" && r.protocol == "6" && try(one(r.tcp_options).min, 0) == 8443 && try(one(r.tcp_options).max, 0) == 8443
    ]) == 1
    error_message = "enable_api opens the API port."
  }
  assert {
    condition     = strcontains(local.turnserver_toml[0], "\n[api]\n") && strcontains(local.turnserver_toml[0], "\nlisten = \"10.0.1.10:8443\"\n") && strcontains(local.turnserver_toml[0], "\nkeys = [\"${var.api_key_hash}\"]\n") && strcontains(local.turnserver_toml[0], "\nmetrics = false\n")
    error_message = "enable_api renders [api] listening on the relay's private IP and api_port, with the key hash, /metrics off."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "\"-p tcp --dport 8443\"")
    error_message = "The host firewall opens the API port."
  }
  assert {
    condition     = output.credentials_api_urls == tolist(["http://203.0.113.10:8443/v1/turn/credentials"])
    error_message = "The credentials API URL names the public IP and the API port."
  }
}

run "api_metrics" {
  command = plan
  variables {
    enable_api   = true
    api_key_hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    api_metrics  = true
  }
  assert {
    condition     = strcontains(local.turnserver_toml[0], "\nmetrics = true\n")
    error_message = "api_metrics turns /metrics on in [api]."
  }
}

run "opened_ports_are_served" {
  # Without enable_api nothing but TURN is rendered, and every TCP port opened to the Internet
  # is one turnserver.toml serves: 3478 (server.tcp) or the relay range (RFC 6062 relays).
  command = plan
  assert {
    condition     = !strcontains(local.turnserver_toml[0], "[api]") && !strcontains(local.turnserver_toml[0], "tls-listen")
    error_message = "By default turnserver.toml serves no credentials API and no TURN over TLS."
  }
  assert {
    condition     = strcontains(local.turnserver_toml[0], "\ntcp = true\n") && strcontains(local.turnserver_toml[0], "\nmin-port = 49152\nmax-port = 65535\n")
    error_message = "turnserver.toml serves TURN over TCP and relays on the range the security list opens."
  }
  assert {
    condition = alltrue([
      for r in oci_core_security_list.turnd.ingress_security_rules :
      r.source == var.admin_cidr || r.protocol != "6" || contains(["3478-3478", "49152-65535"], try("${one(r.tcp_options).min}-${one(r.tcp_options).max}", "all ports"))
    ])
    error_message = "A TCP port is opened to the Internet that turnserver.toml does not serve."
  }
  assert {
    condition     = length(output.credentials_api_urls) == 0
    error_message = "No credentials API URL without enable_api."
  }
  assert {
    condition = alltrue([
      for rule in ["\"-p udp --dport 49152:65535\"", "\"-p tcp --dport 49152:65535\"", "\"-p icmp --icmp-type 3\"", "\"-p icmp --icmp-type 11\""] :
      strcontains(local.user_data[0], rule)
    ]) && !strcontains(local.user_data[0], "--dport 5349") && !strcontains(local.user_data[0], "--dport 443")
    error_message = "The host firewall accepts the relay range on UDP and TCP and the ICMP errors turnd relays, and not 5349 or 443."
  }
}

run "relays" {
  variables {
    relay_count   = 2
    ocpus         = 2
    memory_in_gbs = 12
  }
  assert {
    condition     = length(oci_core_instance.relay) == 2
    error_message = "relay_count relays."
  }
  assert {
    condition = alltrue([
      for vm in oci_core_instance.relay :
      vm.shape == "VM.Standard.A1.Flex" && one(vm.shape_config).ocpus == 2 && one(vm.shape_config).memory_in_gbs == 12
    ])
    error_message = "Relays are Always Free A1.Flex VMs with the configured OCPUs and memory."
  }
  assert {
    condition     = [for vm in oci_core_instance.relay : one(vm.source_details).source_id] == ["ocid1.image.oc1.eu-frankfurt-1.ubuntu2204aarch64", "ocid1.image.oc1.eu-frankfurt-1.ubuntu2204aarch64"]
    error_message = "Relays boot the Ubuntu 22.04 image found by the data source."
  }
  assert {
    condition     = data.oci_core_images.ubuntu.operating_system == "Canonical Ubuntu" && data.oci_core_images.ubuntu.operating_system_version == "22.04" && data.oci_core_images.ubuntu.shape == "VM.Standard.A1.Flex"
    error_message = "The image data source asks for Canonical Ubuntu 22.04 for the A1 shape."
  }
  assert {
    condition     = alltrue([for vm in oci_core_instance.relay : vm.is_pv_encryption_in_transit_enabled == true && one(vm.launch_options).is_pv_encryption_in_transit_enabled == true])
    error_message = "Boot volume in-transit encryption is on."
  }
  assert {
    condition     = alltrue([for vm in oci_core_instance.relay : one(vm.instance_options).are_legacy_imds_endpoints_disabled == true])
    error_message = "Legacy (v1) instance metadata endpoints are off."
  }
  assert {
    condition     = [for vm in oci_core_instance.relay : one(vm.create_vnic_details).private_ip] == ["10.0.1.10", "10.0.1.11"]
    error_message = "Relay N gets the private IP cidrhost(subnet, 10 + N)."
  }
  assert {
    condition     = alltrue([for vm in oci_core_instance.relay : one(vm.create_vnic_details).assign_public_ip == "true" && one(vm.create_vnic_details).subnet_id == oci_core_subnet.turnd.id])
    error_message = "Relays sit in the public subnet with a public IP."
  }
  assert {
    condition     = [for vm in oci_core_instance.relay : vm.availability_domain] == ["Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2"]
    error_message = "Relays spread over the availability domains."
  }
  assert {
    condition     = output.turn_uris == ["turn:203.0.113.10:3478?transport=udp", "turn:203.0.113.10:3478?transport=tcp", "turn:203.0.113.10:3478?transport=udp", "turn:203.0.113.10:3478?transport=tcp"]
    error_message = "turn: URIs for UDP and TCP on 3478 for each relay."
  }
}

run "user_data" {
  variables {
    relay_count = 2
  }
  assert {
    condition     = alltrue([for vm in oci_core_instance.relay : startswith(base64decode(vm.metadata.user_data), "#cloud-config\n")])
    error_message = "The user data is a cloud-config document."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[1].metadata.user_data), "listen = [\"10.0.1.11:3478\"]") && strcontains(base64decode(oci_core_instance.relay[1].metadata.user_data), "external-ip = \"@PUBLIC_IP@/10.0.1.11\"")
    error_message = "turnserver.toml listens on the relay's private IP and advertises its public IP."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "- path: /etc/turnd/secrets\n    owner: root:root\n    permissions: \"0600\"\n    content: |\n      ${var.turn_secret}\n")
    error_message = "The shared secret goes into /etc/turnd/secrets, readable by root only."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "secrets-file = \"secrets\"") && length(regexall(var.turn_secret, base64decode(oci_core_instance.relay[0].metadata.user_data))) == 1
    error_message = "turnserver.toml names the secrets file and holds no secret itself."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "echo \"${var.turnd_binary_sha256}  $tmp\" | sha256sum --check --strict -")
    error_message = "The binary is checked against turnd_binary_sha256 before it is installed."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "LoadCredential=turnserver.toml:/etc/turnd/turnserver.toml") && strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "LoadCredential=secrets:/etc/turnd/secrets")
    error_message = "The user data installs systemd/turnd.service."
  }
  assert {
    condition     = strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "\"-p udp --dport 49152:65535\"") && strcontains(base64decode(oci_core_instance.relay[0].metadata.user_data), "netfilter-persistent save")
    error_message = "The host firewall opens the relay range and persists the rules."
  }
  assert {
    condition     = oci_core_instance.relay[0].metadata.ssh_authorized_keys == var.ssh_public_key
    error_message = "The SSH key is installed."
  }
}

run "iam" {
  assert {
    condition     = oci_identity_policy.relays_read_vnics.statements == tolist(["Allow dynamic-group turnd-relays to read vnics in compartment id ocid1.compartment.oc1..aaaaaaaaexamplecompartment"])
    error_message = "Relays may read VNICs of their compartment, nothing more."
  }
  assert {
    condition     = oci_identity_dynamic_group.relays.compartment_id == var.tenancy_ocid && strcontains(oci_identity_dynamic_group.relays.matching_rule, var.compartment_ocid)
    error_message = "The dynamic group lives in the tenancy and matches the relays' compartment."
  }
}

run "iam_in_root_compartment" {
  command = plan
  variables {
    compartment_ocid = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy"
  }
  assert {
    condition     = oci_identity_policy.relays_read_vnics.statements == tolist(["Allow dynamic-group turnd-relays to read vnics in tenancy"])
    error_message = "The root compartment is named `tenancy` in policy statements."
  }
}

run "largest_free_tier_deployment" {
  command = plan
  variables {
    relay_count             = 4
    ocpus                   = 1
    memory_in_gbs           = 6
    boot_volume_size_in_gbs = 50
  }
  assert {
    condition     = length(oci_core_instance.relay) == 4
    error_message = "Four 1-OCPU, 6 GB relays fit the Always Free tier."
  }
}
