#!/opt/turnd-oci/bin/python3
"""Print this VM's public IPv4 address, as OCI assigned it to the primary VNIC.

OCI's instance metadata service knows the VNIC but not its public IP, and Terraform cannot put
the address into the user data (it is assigned with the instance the user data belongs to).
So the VM asks the OCI API itself, authenticated as an instance principal: the dynamic group
and policy in terraform/iam.tf allow exactly `read vnics`. A fresh policy can take a few
minutes to apply, so a refused call is retried, for at most ten minutes.
"""

import json
import sys
import time
import urllib.request

import oci

METADATA_VNICS = "http://169.254.169.254/opc/v2/vnics/"
ATTEMPTS = 60
PAUSE_SECONDS = 10


def main() -> int:
    request = urllib.request.Request(METADATA_VNICS, headers={"Authorization": "Bearer Oracle"})
    with urllib.request.urlopen(request, timeout=10) as response:
        vnic_id = json.load(response)[0]["vnicId"]
    error = None
    for _ in range(ATTEMPTS):
        try:
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
            client = oci.core.VirtualNetworkClient({"region": signer.region}, signer=signer)
            public_ip = client.get_vnic(vnic_id).data.public_ip
            if public_ip:
                print(public_ip)
                return 0
            error = "the primary VNIC has no public IP"
        except (oci.exceptions.ServiceError, oci.exceptions.RequestException) as e:
            error = str(e)
        time.sleep(PAUSE_SECONDS)
    print(f"public-ip: giving up after {ATTEMPTS} attempts: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
