# A deliberately broken deployment: SSH open to the whole Internet. scripts/test-infra runs
# this file alone (`terraform test -test-directory=tests/broken`) and requires it to FAIL with
# the admin_cidr validation error; it is not part of the normal test run.

mock_provider "oci" {}

run "ssh_open_to_world" {
  command = plan
  variables {
    tenancy_ocid        = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy"
    compartment_ocid    = "ocid1.compartment.oc1..aaaaaaaaexamplecompartment"
    region              = "eu-frankfurt-1"
    admin_cidr          = "0.0.0.0/0"
    ssh_public_key      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample test"
    turnd_binary_url    = "https://downloads.example.invalid/turnd-aarch64"
    turnd_binary_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    turn_secret         = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f"
  }
}
