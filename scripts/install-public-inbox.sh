#!/bin/sh
# Install public-inbox, the read-only archive (as lore.kernel.org runs it) that the mail
# integration tests read a list from: public-inbox-init and -mda to build an inbox,
# public-inbox-imapd to serve it. Idempotent; Debian 12, as root. The tests start a private
# public-inbox-imapd on 127.0.0.1 from their own config; no packaged service may run.
set -eu
. "$(dirname "$0")/apt-no-services.sh"

apt_install_missing public-inbox

for cmd in public-inbox-init public-inbox-mda public-inbox-imapd; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "ERROR: $cmd not found after installation" >&2; exit 1; }
done
echo "archive ready: public-inbox $(dpkg-query -W -f='${Version}' public-inbox)"
