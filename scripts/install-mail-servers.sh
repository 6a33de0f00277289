#!/bin/sh
# Install the IMAP server the mail integration tests start themselves: Dovecot.
# (Most tests' SMTP side is aiosmtpd, a Python test dependency; install-mailman.sh adds a real
# list.) Idempotent; Debian 12, as root.
# The packaged service must not keep running: the tests start private instances.
set -eu
. "$(dirname "$0")/apt-no-services.sh"

apt_install_missing dovecot-imapd
# Whatever happened during installation, leave no packaged daemon running or enabled.
stop_system_services dovecot

command -v dovecot >/dev/null 2>&1 || { echo "ERROR: dovecot not found after installation" >&2; exit 1; }
id dovenull >/dev/null 2>&1 || { echo "ERROR: the dovenull user is missing" >&2; exit 1; }
echo "mail server ready: dovecot $(dovecot --version 2>/dev/null)"
