#!/bin/sh
# Install the IRC servers the integration tests start themselves: InspIRCd + Anope, ngIRCd
# (and openssl, which the TLS fixtures use to make certificates).
# Idempotent and quick when everything is present. Debian 12, run as root.
# The packages' own services must not keep running: the tests start private instances.
set -eu
. "$(dirname "$0")/apt-no-services.sh"

apt_install_missing inspircd anope ngircd openssl
# Whatever happened during installation, leave no packaged daemon running or enabled.
stop_system_services inspircd anope ngircd

for bin in inspircd anope ngircd; do
    command -v "$bin" >/dev/null 2>&1 || { echo "ERROR: $bin not found after installation" >&2; exit 1; }
done
echo "IRC servers ready: $(inspircd --version 2>/dev/null | head -n1 || echo inspircd), anope, ngircd"
