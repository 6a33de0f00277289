#!/bin/sh
# Install the mailing list the mail integration tests run the bot's mail through: Mailman 3
# (core, REST API) and Postfix as its MTA, with Dovecot's LMTP delivering to the mailboxes.
# Idempotent; Debian 12, as root. The tests start private instances from their own config
# directories: no packaged service may start or stay enabled, and Postfix gets no system
# configuration ("No configuration"), so it never listens on port 25.
set -eu
. "$(dirname "$0")/apt-no-services.sh"

# Answered before installation, so the packages ask nothing and configure nothing system-wide.
debconf-set-selections <<'SEL'
postfix postfix/main_mailer_type select No configuration
mailman3 mailman3/dbconfig-install boolean false
SEL
apt_install_missing postfix dovecot-lmtpd mailman3
stop_system_services postfix mailman3

for cmd in postfix postconf mailman; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "ERROR: $cmd not found after installation" >&2; exit 1; }
done
echo "mailing list ready: $(mailman --version 2>/dev/null), postfix $(postconf -d -h mail_version 2>/dev/null)"
