# Sourced by the install-*-servers.sh scripts: install Debian packages whose daemons the tests
# start privately, without letting the packaged services start or stay enabled.
#   . "$(dirname "$0")/apt-no-services.sh"
#   apt_install_missing pkg...   # installs what is not installed yet, with no service starting
#   stop_system_services svc...  # stops and disables the packaged services, if any

apt_install_missing() {
    missing=""
    for pkg in "$@"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            echo "already installed: $pkg"
        else
            missing="$missing $pkg"
        fi
    done
    [ -n "$missing" ] || return 0
    echo "installing:$missing"
    # Forbid service starts during installation (policy-rc.d exit 101 = "action forbidden");
    # a policy already there is the machine's own and stays.
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=yes
    fi
    trap '[ "$own_policy" = yes ] && rm -f "$policy"' EXIT
    echo "apt-get update"
    apt-get update -q
    echo "apt-get install --no-install-recommends$missing"
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

stop_system_services() {
    for svc in "$@"; do
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
    done
}
