output "relay_public_ips" {
  description = "Public IPv4 address of each relay."
  value       = oci_core_instance.relay[*].public_ip
}

output "relay_private_ips" {
  description = "Private IPv4 address of each relay (turnd listens there; OCI NATs the public IP onto it)."
  value       = oci_core_instance.relay[*].private_ip
}

output "turn_uris" {
  description = "turn: URIs (UDP and TCP on 3478) for RTCPeerConnection iceServers."
  value = flatten([
    for ip in oci_core_instance.relay[*].public_ip : ["turn:${ip}:3478?transport=udp", "turn:${ip}:3478?transport=tcp"]
  ])
}

output "credentials_api_urls" {
  description = "turnd's credentials API on each relay (empty unless enable_api). Plain HTTP."
  value       = var.enable_api ? [for ip in oci_core_instance.relay[*].public_ip : "http://${ip}:${var.api_port}/v1/turn/credentials"] : []
}

output "ssh_commands" {
  description = "SSH to each relay (from admin_cidr)."
  value       = [for ip in oci_core_instance.relay[*].public_ip : "ssh ubuntu@${ip}"]
}
