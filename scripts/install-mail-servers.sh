#!/bin/sh
# Install the IMAP server the mail integration tests start themselves: Dovecot.
# (The list's SMTP side is aiosmtpd, a Python test dependency.) Idempotent; Debian 12, as root.
# The packaged service must not keep running: the tests start private instances.
set -eu

PACKAGES="dovecot-imapd"

missing=""
for pkg in $PACKAGES; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        echo "already installed: $pkg"
    else
        missing="$missing $pkg"
    fi
done

if [ -n "$missing" ]; then
    echo "installing:$missing"
    # Forbid service starts during installation (policy-rc.d exit 101 = "action forbidden").
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=yes
    fi
    trap '[ "$own_policy" = yes ] && rm -f "$policy"' EXIT
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# Whatever happened during installation, leave no packaged daemon running or enabled.
svc=dovecot
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
        echo "stopping and disabling system service $svc"
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
elif [ -x "/etc/init.d/$svc" ]; then
    if /etc/init.d/"$svc" status >/dev/null 2>&1; then
        echo "stopping system service $svc"
        /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
fi

command -v dovecot >/dev/null 2>&1 || { echo "ERROR: dovecot not found after installation" >&2; exit 1; }
id dovenull >/dev/null 2>&1 || { echo "ERROR: the dovenull user is missing" >&2; exit 1; }
echo "mail server ready: dovecot $(dovecot --version 2>/dev/null)"
