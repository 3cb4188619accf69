# Inputs that must be refused before anything is planned: SSH open to the world, shapes beyond
# the Always Free limits, relay ports that collide with the kernel's ephemeral ports.

mock_provider "oci" {
  override_data {
    target = data.oci_core_images.ubuntu
    values = {
      images = [{ id = "ocid1.image.oc1.eu-frankfurt-1.ubuntu2204aarch64" }]
    }
  }
  override_data {
    target = data.oci_identity_availability_domains.all
    values = {
      availability_domains = [{ name = "Uocm:EU-FRANKFURT-1-AD-1" }]
    }
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

run "ssh_open_to_the_world_is_refused" {
  command = plan
  variables { admin_cidr = "0.0.0.0/0" }
  expect_failures = [var.admin_cidr]
}

run "ssh_open_to_a_huge_range_is_refused" {
  command = plan
  variables { admin_cidr = "64.0.0.0/2" }
  expect_failures = [var.admin_cidr]
}

run "admin_cidr_must_be_a_cidr" {
  command = plan
  variables { admin_cidr = "my-laptop" }
  expect_failures = [var.admin_cidr]
}

run "too_many_relays" {
  command = plan
  variables { relay_count = 5 }
  expect_failures = [var.relay_count]
}

run "more_ocpus_than_free" {
  command = plan
  variables {
    relay_count = 2
    ocpus       = 3
  }
  expect_failures = [var.ocpus]
}

run "more_memory_than_free" {
  command = plan
  variables {
    relay_count   = 2
    ocpus         = 2
    memory_in_gbs = 16
  }
  expect_failures = [var.memory_in_gbs]
}

run "more_memory_than_a1_allows_per_ocpu" {
  command = plan
  variables { memory_in_gbs = 65 }
  expect_failures = [var.memory_in_gbs]
}

run "more_block_storage_than_free" {
  command = plan
  variables {
    relay_count             = 4
    boot_volume_size_in_gbs = 60
  }
  expect_failures = [var.boot_volume_size_in_gbs]
}

run "binary_without_checksum" {
  command = plan
  variables { turnd_binary_sha256 = "latest" }
  expect_failures = [var.turnd_binary_sha256]
}

run "binary_over_plain_http" {
  command = plan
  variables { turnd_binary_url = "http://downloads.example.invalid/turnd" }
  expect_failures = [var.turnd_binary_url]
}

run "short_secret" {
  command = plan
  variables { turn_secret = "hunter2" }
  expect_failures = [var.turn_secret]
}

run "relay_ports_inside_the_ephemeral_range" {
  command = plan
  variables { relay_min_port = 40000 }
  expect_failures = [oci_core_instance.relay]
}

# turnd skips lines of the secrets file that start with '#': such a secret would leave the
# relay with none, and it would never start.
run "secret_that_turnd_reads_as_a_comment" {
  command = plan
  variables { turn_secret = "#f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f" }
  expect_failures = [var.turn_secret]
}

run "secret_with_a_newline" {
  command = plan
  variables { turn_secret = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f\n0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f" }
  expect_failures = [var.turn_secret]
}

run "secret_with_spaces" {
  command = plan
  variables { turn_secret = " 0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f " }
  expect_failures = [var.turn_secret]
}

run "secret_with_a_quote" {
  command = plan
  variables { turn_secret = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f'0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f" }
  expect_failures = [var.turn_secret]
}

run "secret_with_a_hash_inside_is_accepted" {
  command = plan
  variables { turn_secret = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f#0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f" }
  assert {
    condition     = strcontains(nonsensitive(local.user_data[0]), "      0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f#0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f\n")
    error_message = "A '#' after the first character is part of the secret (turnd skips only lines that start with it)."
  }
}

# Nothing serves TURN over TLS, so 443 is not opened: asking for it is refused, not ignored.
run "tls_443_is_refused" {
  command = plan
  variables { enable_tls_443 = true }
  expect_failures = [var.enable_tls_443]
}

# turnd refuses an [api] without a key: enable_api without the hash is refused at plan time.
run "api_without_a_key" {
  command = plan
  variables { enable_api = true }
  expect_failures = [var.api_key_hash]
}

run "api_key_given_in_plain" {
  command = plan
  variables {
    enable_api   = true
    api_key_hash = "0123456789abcdef0123456789abcdef0123456789abcdef"
  }
  expect_failures = [var.api_key_hash]
}

run "api_port_inside_the_relay_range" {
  command = plan
  variables {
    enable_api   = true
    api_key_hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    api_port     = 50000
  }
  expect_failures = [var.api_port]
}
