#!/usr/bin/env bash
# The maintainer scripts (packaging/deb/) on a host where systemd runs: what
# they ask of systemd on install, upgrade, remove and purge. Needs root.
#
# systemd is not PID 1 here, so the scripts run in a private mount namespace
# that looks like a systemd host: /run/systemd/system exists, /etc and
# /var/lib/systemd are private copies, the unit is in /lib/systemd/system.
# The real deb-systemd-helper and groupadd run against those copies;
# `systemctl` and `deb-systemd-invoke` (which would talk to systemd) are
# recorders first on PATH (offline `systemctl --root=` calls also run). The host's /etc and /run are never changed.
#
# Checked: a first install creates the group, enables, daemon-reloads and
# starts; an upgrade never stops the agent (prerm does nothing) and restarts
# it in postinst; removal stops it; purge removes the enable symlink.
#
# usage: maintscripts_test.sh SOURCE_DIR
set -euo pipefail

src=$(realpath "$1")
if [ "${BULKHEAD_IN_NS:-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (mount namespace)" >&2; exit 1; }
    host_group=$(sha256sum /etc/group)
    rc=0
    BULKHEAD_IN_NS=1 unshare -m --propagation private bash "$0" "$@" || rc=$?
    [ "$(sha256sum /etc/group)" = "$host_group" ] || { echo "FAIL: host /etc/group changed" >&2; exit 1; }
    exit $rc
fi

tmp=$(mktemp -d /tmp/bulkhead-maint-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "calls so far:" >&2
    cat "$tmp/calls" >&2 2>/dev/null || true
    exit 1
}
step() { echo "== $*"; }

# A systemd host, in this mount namespace only.
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
cp -a /etc "$tmp/etc"
mount --bind "$tmp/etc" /etc
mkdir -p "$tmp/var-lib-systemd" "$tmp/units"
mount --bind "$tmp/var-lib-systemd" /var/lib/systemd
cp "$src/packaging/systemd/bulkhead-agent.service" "$tmp/units/"
mount --bind "$tmp/units" /lib/systemd/system
sed -i '/^bulkhead:/d' /etc/group /etc/gshadow

# Recorders. `systemctl --root=DIR ...` works on files alone (deb-systemd-
# helper enables through it): that one is recorded and also run for real.
mkdir -p "$tmp/bin"
real_systemctl=$(command -v systemctl)
cat >"$tmp/bin/systemctl" <<EOF
#!/bin/sh
echo "systemctl \$*" >>$tmp/calls
case "\$1" in --root=*) exec $real_systemctl "\$@" ;; esac
EOF
printf '#!/bin/sh\necho "deb-systemd-invoke $*" >>%s/calls\n' "$tmp" >"$tmp/bin/deb-systemd-invoke"
chmod +x "$tmp/bin/systemctl" "$tmp/bin/deb-systemd-invoke"

# Runs a maintainer script as dpkg would; the calls it made go to $tmp/last.
script() {
    local name=$1
    shift
    : >"$tmp/calls"
    env -u DPKG_ROOT PATH="$tmp/bin:$PATH" DPKG_MAINTSCRIPT_PACKAGE=bulkhead \
        DPKG_MAINTSCRIPT_NAME="$name" sh "$src/packaging/deb/$name" "$@" ||
        fail "$name $* exited $?"
    cp "$tmp/calls" "$tmp/last"
    sed 's/^/  /' "$tmp/last"
}
called() { grep -qxF "$1" "$tmp/last"; }
wants=/etc/systemd/system/multi-user.target.wants/bulkhead-agent.service

step "postinst configure (first install)"
script postinst configure
grep -q '^bulkhead:' /etc/group || fail "no bulkhead group"
[ -L "$wants" ] || fail "not enabled"
called "systemctl --system daemon-reload" || fail "no daemon-reload"
called "deb-systemd-invoke start bulkhead-agent.service" || fail "not started"
! grep -q 'restart\|stop' "$tmp/last" || fail "a first install must only start"

step "prerm upgrade: the agent keeps running"
script prerm upgrade 0.1.0-1
[ ! -s "$tmp/last" ] || fail "prerm upgrade touched the service"

step "postinst configure (upgrade): one restart, no stop"
script postinst configure 0.1.0-1
called "deb-systemd-invoke restart bulkhead-agent.service" || fail "not restarted on upgrade"
! grep -q 'stop\| start' "$tmp/last" || fail "upgrade must restart in one step"
[ "$(grep -c '^bulkhead:' /etc/group)" -eq 1 ] || fail "group duplicated"

step "prerm remove: stop"
script prerm remove
called "deb-systemd-invoke stop bulkhead-agent.service" || fail "not stopped on remove"

step "postrm remove, purge"
rm /lib/systemd/system/bulkhead-agent.service
script postrm remove
called "systemctl --system daemon-reload" || fail "no daemon-reload after remove"
script postrm purge
[ ! -e "$wants" ] && [ ! -L "$wants" ] || fail "purge left $wants"
[ ! -e /var/lib/systemd/deb-systemd-helper-enabled/bulkhead-agent.service.dsh-also ] ||
    fail "purge left deb-systemd-helper's state"
grep -q '^bulkhead:' /etc/group || fail "purge is documented to keep the group"

echo PASS
