# Example inputs for the offline checks (scripts/test-infra): rendering the cloud-init user data
# with `terraform console`. Not a deployment: the OCIDs and the key are placeholders.
tenancy_ocid        = "ocid1.tenancy.oc1..aaaaaaaaexampletenancy"
compartment_ocid    = "ocid1.compartment.oc1..aaaaaaaaexamplecompartment"
region              = "eu-frankfurt-1"
admin_cidr          = "198.51.100.7/32"
ssh_public_key      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample test"
turnd_binary_url    = "https://downloads.example.invalid/turnd-aarch64"
turnd_binary_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
turn_secret         = "0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f0f3a9c1e5b7d2a4c6e8f0a1b3c5d7e9f"
relay_count         = 2
ocpus               = 2
memory_in_gbs       = 12
api_key_hash        = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
enable_api          = true
