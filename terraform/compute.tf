# The relays: `relay_count` Always Free Ampere VMs running Ubuntu 22.04, each set up on first
# boot by cloud-init (templates/cloud-init.yaml.tftpl).

locals {
  shape = "VM.Standard.A1.Flex"

  # Fixed private addresses, so the user data can name them before the VMs exist.
  private_ips = [for i in range(var.relay_count) : cidrhost(var.subnet_cidr, 10 + i)]

  # cloud-init replaces this with the public IP the VM reads from the OCI API on first boot.
  public_ip_placeholder = "@PUBLIC_IP@"

  # The Python OCI SDK that templates/public-ip.py runs on.
  oci_sdk_version = "2.189.0"

  turnd_service = file("${path.module}/../systemd/turnd.service")
  sysctl_conf   = file("${path.module}/../systemd/99-turnd.conf")

  # The kernel's ephemeral port range from the sysctl drop-in; the relay range must avoid it.
  ephemeral_ports = [for p in regex("net\\.ipv4\\.ip_local_port_range\\s*=\\s*(\\d+)\\s+(\\d+)", local.sysctl_conf) : tonumber(p)]

  # The host firewall opens exactly what the security list opens to the Internet. The ICMP
  # errors need their own rules: relayed UDP skips connection tracking (below), so an error
  # about it is not RELATED to anything the kernel knows.
  firewall_rules = concat(
    [
      for r in local.public_ingress :
      "-p ${r.protocol == local.tcp ? "tcp" : "udp"} --dport ${r.min == r.max ? r.min : "${r.min}:${r.max}"}"
    ],
    [for r in local.icmp_ingress : "-p icmp --icmp-type ${r.type}"],
  )

  # UDP ports whose packets bypass the host's connection tracking (STUN/TURN and relay ports).
  udp_notrack_ports = [
    for r in local.public_ingress : r.min == r.max ? tostring(r.min) : "${r.min}:${r.max}" if r.protocol == local.udp
  ]

  turnserver_toml = [
    for ip in local.private_ips : templatefile("${path.module}/templates/turnserver.toml.tftpl", {
      private_ip = ip
      public_ip  = local.public_ip_placeholder
      min_port   = var.relay_min_port
      max_port   = var.relay_max_port
      realm      = var.realm
      # The credentials API, when enable_api: on the private IP (OCI NATs the public one onto
      # it), with the one key hash; handing out the URIs turnd serves.
      api = var.enable_api ? {
        listen  = "${ip}:${var.api_port}"
        key     = var.api_key_hash
        metrics = var.api_metrics
      } : null
    })
  ]

  user_data = [
    for toml in local.turnserver_toml : templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
      turnserver_toml     = toml
      turn_secret         = var.turn_secret
      turnd_service       = local.turnd_service
      sysctl_conf         = local.sysctl_conf
      public_ip_script    = file("${path.module}/templates/public-ip.py")
      turnd_binary_url    = var.turnd_binary_url
      turnd_binary_sha256 = var.turnd_binary_sha256
      firewall_rules      = local.firewall_rules
      udp_notrack_ports   = local.udp_notrack_ports
      oci_sdk_version     = local.oci_sdk_version
    })
  ]
}

data "oci_identity_availability_domains" "all" {
  compartment_id = var.tenancy_ocid
}

# The newest Canonical Ubuntu 22.04 image for the Arm shape (not the "Minimal" variant).
data "oci_core_images" "ubuntu" {
  compartment_id           = var.compartment_ocid
  operating_system         = "Canonical Ubuntu"
  operating_system_version = "22.04"
  shape                    = local.shape
  state                    = "AVAILABLE"
  sort_by                  = "TIMECREATED"
  sort_order               = "DESC"
}

resource "oci_core_instance" "relay" {
  count = var.relay_count

  compartment_id = var.compartment_ocid
  # Relays spread over the region's availability domains (most regions have one).
  availability_domain = data.oci_identity_availability_domains.all.availability_domains[count.index % length(data.oci_identity_availability_domains.all.availability_domains)].name
  display_name        = "${var.name}-relay-${count.index}"
  shape               = local.shape

  # Boot volume traffic between the host and the volume is encrypted in transit.
  is_pv_encryption_in_transit_enabled = true

  shape_config {
    ocpus         = var.ocpus
    memory_in_gbs = var.memory_in_gbs
  }

  source_details {
    source_type             = "image"
    source_id               = data.oci_core_images.ubuntu.images[0].id
    boot_volume_size_in_gbs = var.boot_volume_size_in_gbs
  }

  create_vnic_details {
    subnet_id        = oci_core_subnet.turnd.id
    private_ip       = local.private_ips[count.index]
    assign_public_ip = "true"
    hostname_label   = "relay${count.index}"
    display_name     = "${var.name}-relay-${count.index}"
  }

  launch_options {
    is_pv_encryption_in_transit_enabled = true
  }

  # Instance metadata only through IMDSv2 (/opc/v2 with its Authorization header).
  instance_options {
    are_legacy_imds_endpoints_disabled = true
  }

  agent_config {
    is_monitoring_disabled = false
    is_management_disabled = false
  }

  availability_config {
    recovery_action = "RESTORE_INSTANCE"
  }

  metadata = {
    ssh_authorized_keys = var.ssh_public_key
    user_data           = base64encode(local.user_data[count.index])
  }

  # The relay asks the API for its public IP on first boot: the policy must exist by then.
  depends_on = [oci_identity_policy.relays_read_vnics]

  lifecycle {
    # A newer Ubuntu image must not replace a running relay; recreate it deliberately.
    ignore_changes = [source_details[0].source_id]

    precondition {
      condition     = length(data.oci_core_images.ubuntu.images) > 0
      error_message = "No Canonical Ubuntu 22.04 image for ${local.shape} in this region."
    }

    precondition {
      condition     = var.relay_min_port > local.ephemeral_ports[1] || var.relay_max_port < local.ephemeral_ports[0]
      error_message = "The relay port range must not overlap net.ipv4.ip_local_port_range in systemd/99-turnd.conf."
    }
  }
}
