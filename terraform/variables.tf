# Inputs of the turnd relay deployment. Required: tenancy_ocid, compartment_ocid, region,
# admin_cidr, ssh_public_key, turnd_binary_url, turnd_binary_sha256, turn_secret.

# --- Where ---------------------------------------------------------------------------------

variable "tenancy_ocid" {
  description = "OCID of the tenancy (availability domains and the relays' dynamic group live there)."
  type        = string

  validation {
    condition     = startswith(var.tenancy_ocid, "ocid1.tenancy.")
    error_message = "tenancy_ocid must be a tenancy OCID (ocid1.tenancy....)."
  }
}

variable "compartment_ocid" {
  description = "OCID of the compartment that gets the network and the relays (may be the tenancy itself)."
  type        = string

  validation {
    condition     = can(regex("^ocid1\\.(compartment|tenancy)\\.", var.compartment_ocid))
    error_message = "compartment_ocid must be a compartment or tenancy OCID."
  }
}

variable "region" {
  description = "OCI region identifier, e.g. eu-frankfurt-1. Always Free compute exists only in the home region."
  type        = string
}

variable "oci_config_profile" {
  description = "Profile of ~/.oci/config that the provider authenticates with."
  type        = string
  default     = "DEFAULT"
}

variable "name" {
  description = "Prefix of display names, host names and the IAM dynamic group / policy names."
  type        = string
  default     = "turnd"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{0,9}$", var.name))
    error_message = "name must be 1-10 lowercase letters or digits, starting with a letter (it is also a DNS label)."
  }
}

# --- Network -------------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Public subnet inside the VCN 10.0.0.0/16; relay N gets the private IP cidrhost(subnet_cidr, 10 + N)."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && try(startswith(cidrhost(var.subnet_cidr, 0), "10.0.") && tonumber(split("/", var.subnet_cidr)[1]) >= 16 && tonumber(split("/", var.subnet_cidr)[1]) <= 28, false)
    error_message = "subnet_cidr must be a /16 to /28 inside 10.0.0.0/16."
  }
}

variable "admin_cidr" {
  description = "IPv4 CIDR allowed to reach SSH (TCP 22), e.g. your address as 198.51.100.7/32. Never the whole Internet."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.admin_cidr))
    error_message = "admin_cidr must be an IPv4 CIDR such as 198.51.100.7/32."
  }

  validation {
    condition     = can(cidrnetmask(var.admin_cidr)) && try(tonumber(split("/", var.admin_cidr)[1]) >= 8, false)
    error_message = "SSH must not be open to the world: admin_cidr must be /8 or narrower (0.0.0.0/0 is refused)."
  }
}

variable "relay_min_port" {
  description = "First port of turnd's relay range (turnserver.toml min-port): UDP relays, and TCP relays (RFC 6062)."
  type        = number
  default     = 49152

  validation {
    condition     = var.relay_min_port >= 1024 && var.relay_min_port <= 65535 && floor(var.relay_min_port) == var.relay_min_port
    error_message = "relay_min_port must be an integer in 1024-65535."
  }
}

variable "relay_max_port" {
  description = "Last port of turnd's relay range (turnserver.toml max-port)."
  type        = number
  default     = 65535

  validation {
    condition     = var.relay_max_port >= var.relay_min_port && var.relay_max_port <= 65535 && floor(var.relay_max_port) == var.relay_max_port
    error_message = "relay_max_port must be an integer in relay_min_port-65535."
  }
}

variable "enable_tls_443" {
  description = "Not supported: this deployment configures no TURN over TLS (no certificate), so it opens neither 5349 nor 443. Kept so that a tfvars file setting it to true is refused with a reason instead of ignored."
  type        = bool
  default     = false

  validation {
    condition     = !var.enable_tls_443
    error_message = "enable_tls_443: this deployment serves no TURN over TLS (turnserver.toml has no tls-listen, and a relay has no certificate for a DNS name), so it opens neither TCP 5349 nor 443. Remove enable_tls_443, or add server.tls-listen, cert and key to templates/turnserver.toml.tftpl yourself (terraform/README.md, \"Network\")."
  }
}

variable "enable_api" {
  description = "Serve turnd's HTTP credentials API ([api] in turnserver.toml, on the private IP and api_port) and open api_port to the Internet. Needs api_key_hash."
  type        = bool
  default     = false
}

variable "api_port" {
  description = "TCP port of turnd's HTTP credentials API (served and opened only when enable_api is true)."
  type        = number
  default     = 8443

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535 && floor(var.api_port) == var.api_port && !contains([22, 3478], var.api_port)
    error_message = "api_port must be a port in 1-65535 that is not 22 (SSH) or 3478 (STUN/TURN)."
  }

  validation {
    condition     = var.api_port < var.relay_min_port || var.api_port > var.relay_max_port
    error_message = "api_port must be outside relay_min_port-relay_max_port: turnd listens for TCP relays (RFC 6062) on those ports."
  }
}

variable "api_key_hash" {
  description = "The accepted API key as turnd stores it (api.keys): \"sha256:\" and 64 hex digits, printed by `printf %s \"$KEY\" | turnd api-key-hash`. Only the hash reaches Terraform and the relays. Required when enable_api."
  type        = string
  default     = ""

  validation {
    condition     = var.api_key_hash == "" || can(regex("^sha256:[0-9a-f]{64}$", var.api_key_hash))
    error_message = "api_key_hash must be \"sha256:\" and 64 lowercase hex digits, as `turnd api-key-hash` prints it (not the key itself)."
  }

  validation {
    condition     = !var.enable_api || var.api_key_hash != ""
    error_message = "enable_api needs api_key_hash: turnd refuses an [api] without a key. Generate a key (openssl rand -hex 24) and set api_key_hash to `printf %s \"$KEY\" | turnd api-key-hash`."
  }
}

variable "api_metrics" {
  description = "Also serve Prometheus /metrics on the API port (api.metrics). That port is open to the Internet and /metrics needs no key, so anyone can read the counters."
  type        = bool
  default     = false
}

# --- Compute (Always Free: 4 Ampere OCPUs, 24 GB memory, 200 GB block storage in total) ------

variable "relay_count" {
  description = "Number of relay VMs."
  type        = number
  default     = 1

  validation {
    condition     = var.relay_count >= 1 && var.relay_count <= 4 && floor(var.relay_count) == var.relay_count
    error_message = "relay_count must be 1 to 4 (the Always Free tier has 4 Ampere OCPUs)."
  }
}

variable "ocpus" {
  description = "OCPUs per relay (VM.Standard.A1.Flex)."
  type        = number
  default     = 1

  validation {
    condition     = var.ocpus >= 1 && floor(var.ocpus) == var.ocpus && var.ocpus * var.relay_count <= 4
    error_message = "ocpus must be a whole number >= 1, and relay_count * ocpus must stay within the Always Free 4 OCPUs."
  }
}

variable "memory_in_gbs" {
  description = "Memory per relay in GB (1 to 64 per OCPU on A1)."
  type        = number
  default     = 6

  validation {
    condition     = var.memory_in_gbs >= 1 && floor(var.memory_in_gbs) == var.memory_in_gbs && var.memory_in_gbs <= 64 * var.ocpus && var.memory_in_gbs * var.relay_count <= 24
    error_message = "memory_in_gbs must be a whole number of GB, at most 64 per OCPU, and relay_count * memory_in_gbs must stay within the Always Free 24 GB."
  }
}

variable "boot_volume_size_in_gbs" {
  description = "Boot volume per relay in GB (OCI minimum 50)."
  type        = number
  default     = 50

  validation {
    condition     = var.boot_volume_size_in_gbs >= 50 && var.boot_volume_size_in_gbs * var.relay_count <= 200
    error_message = "boot_volume_size_in_gbs must be >= 50, and relay_count * boot_volume_size_in_gbs must stay within the Always Free 200 GB."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for the `ubuntu` user."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key line (ssh-ed25519 AAAA...)."
  }
}

# --- turnd ---------------------------------------------------------------------------------

variable "turnd_binary_url" {
  description = "HTTPS URL of a turnd binary for Linux aarch64 (A1 is Arm), e.g. a release asset."
  type        = string

  validation {
    condition     = startswith(var.turnd_binary_url, "https://")
    error_message = "turnd_binary_url must be an https:// URL."
  }
}

variable "turnd_binary_sha256" {
  description = "SHA-256 of the binary at turnd_binary_url (64 hex digits); cloud-init refuses any other file."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.turnd_binary_sha256))
    error_message = "turnd_binary_sha256 must be 64 lowercase hex digits (sha256sum output)."
  }
}

variable "turn_secret" {
  description = "TURN REST shared secret (auth.secrets). Generate with `openssl rand -hex 32`."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.turn_secret) >= 32
    error_message = "turn_secret must be at least 32 characters (openssl rand -hex 32 gives 64)."
  }

  # It becomes the one line of /etc/turnd/secrets, which turnd reads trimmed, skipping lines
  # that start with '#': a value it would read differently would leave the relay without it.
  validation {
    condition     = can(regex("^[!-~]+$", var.turn_secret))
    error_message = "turn_secret must be printable ASCII without spaces, tabs or newlines (turnd trims each line of the secrets file, and a newline would split it into two secrets)."
  }

  validation {
    condition     = !startswith(var.turn_secret, "#")
    error_message = "turn_secret must not start with '#': turnd skips lines of the secrets file that start with '#' as comments, so the relay would have no secret and would not start."
  }

  validation {
    condition     = !strcontains(var.turn_secret, "\"") && !strcontains(var.turn_secret, "'") && !strcontains(var.turn_secret, "\\")
    error_message = "turn_secret must not contain quotes or backslashes (shells and TOML would read them differently from the secrets file)."
  }
}

variable "realm" {
  description = "TURN realm (auth.realm)."
  type        = string
  default     = "turnd"

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]{1,127}$", var.realm))
    error_message = "realm must be 1-127 letters, digits, dots or dashes."
  }
}
