#!/usr/bin/env bash
# The Debian package, end to end (needs root, as dpkg does):
#  1. `cpack -G DEB` from the build directory, into a temporary directory;
#  2. its control fields (Depends from dpkg-shlibdeps), conffiles,
#     maintainer scripts and file list, against the source tree;
#  3. installed into a throwaway root (`dpkg --root DIR
#     --force-script-chrootless`: the maintainer scripts run on this host
#     with DPKG_ROOT=DIR), upgraded in place, removed and purged, checking
#     what the scripts do there: the `bulkhead` system group, the enable
#     symlink and its state, the admin's disable kept, the conffile kept,
#     nothing left after purge but the group.
# The test runs in a private mount namespace in which systemd appears to run
# (/run/systemd/system exists, on a tmpfs over /run), whatever the host;
# `systemctl` and `deb-systemd-invoke` first on PATH record any call: with
# DPKG_ROOT set the scripts must never touch the running system.
#
# usage: deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

src=$(realpath "$1")
build=$(realpath "$2")
if [ "${BULKHEAD_IN_NS:-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "FAIL: needs root (dpkg, mount namespace)" >&2; exit 1; }
    BULKHEAD_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
tmp=$(mktemp -d /tmp/bulkhead-deb-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
step() { echo "== $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg --root installs files owned by root)"

# The package that owns a shared library (by soname), whichever of the
# merged-/usr paths dpkg recorded.
package_of() {
    local path candidate
    path=$(ldconfig -p | awk -v l="$1" '$1 == l {print $NF; exit}')
    [ -n "$path" ] || return 1
    for candidate in "$path" "$(realpath "$path")" "${path#/usr}" "/usr$path" \
        "$(dirname "$path")/$(basename "$(realpath "$path")")"; do
        dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1 && return 0
    done
    return 1
}

step "cpack -G DEB"
cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 ||
    { cat "$tmp/cpack.log"; fail "cpack failed"; }
debs=("$tmp"/out/bulkhead_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one bulkhead_*.deb, got: ${debs[*]}"
deb=${debs[0]}
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"

step "control fields"
[ "$(dpkg-deb -f "$deb" Package)" = bulkhead ] || fail "Package is not bulkhead"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# Every library the binaries link (dpkg-shlibdeps), and what the scripts run.
for want in libc6 libstdc++6 libnftnl11 libmnl0 'libgrpc++1' libprotobuf libyaml-cpp \
    libspdlog libssl3 passwd init-system-helpers; do
    grep -qF "$want" <<<"$depends" || fail "Depends lacks $want"
done
depends_names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}')
# The shared libraries the binaries really need each come from a package
# named in Depends (nothing left out by hand).
for bin in bulkhead bulkhead-agent bulkhead-cni bulkhead-libvirt-hook; do
    for lib in $(objdump -p "$build/$bin" | awk '/NEEDED/ {print $2}'); do
        pkg=$(package_of "$lib") || fail "$bin needs $lib, which no package owns"
        # The owner, or a name it provides (libspdlog1.10 provides -fmt9).
        names=$(echo "$pkg"; dpkg-query -W -f='${Provides}' "$pkg" | tr ',' '\n' | awk '{print $1}')
        grep -qxFf <(echo "$names") <<<"$depends_names" ||
            fail "$bin needs $lib ($pkg), not in Depends"
    done
done
[ "$(dpkg-deb -f "$deb" Recommends)" = nftables ] || fail "Recommends nftables"

step "control archive: conffiles and maintainer scripts"
dpkg-deb -e "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles")" = "$(printf '/etc/bulkhead/agent.yaml\n/etc/bulkhead/controller.yaml')" ] ||
    fail "conffiles"
for s in postinst prerm postrm; do
    [ -x "$tmp/control/$s" ] || fail "$s missing or not executable"
    sh -n "$tmp/control/$s" || fail "$s: syntax"
    cmp -s "$tmp/control/$s" "$src/packaging/deb/$s" || fail "$s differs from packaging/deb/$s"
done

step "file list"
# A symlink's line ends "path -> target": keep the path.
dpkg-deb -c "$deb" | awk '{print $1, ($1 ~ /^l/ ? $(NF-2) : $NF)}' | sed 's#\./#/#' >"$tmp/list"
files=$(awk '$1 !~ /^d/ {print $2}' "$tmp/list" | sort)
expect=(
    /usr/bin/bulkhead /usr/bin/bulkhead-agent /usr/bin/bulkhead-controller
    /usr/lib/cni/bulkhead-cni /usr/lib/bulkhead/bulkhead-libvirt-hook
    /etc/libvirt/hooks/qemu.d/bulkhead
    /etc/bulkhead/agent.yaml /etc/bulkhead/controller.yaml
    /usr/lib/sysusers.d/bulkhead.conf
    /usr/share/man/man8/bulkhead.8.gz /usr/share/man/man8/bulkhead-agent.8.gz
    /usr/share/bash-completion/completions/bulkhead
    /usr/share/doc/bulkhead/README.md /usr/share/doc/bulkhead/operations.md
    /usr/share/doc/bulkhead/examples/rsyslog/60-bulkhead-siem.conf
)
# The unit and drop-ins: packaging/systemd/*.service and *.service.d/*.conf.
while IFS= read -r f; do
    expect+=("/lib/systemd/system/${f#"$src"/packaging/systemd/}")
done < <(find "$src/packaging/systemd" -maxdepth 1 -type f -name '*.service'
    find "$src/packaging/systemd" -mindepth 2 -maxdepth 2 -type f -path '*.service.d/*.conf')
# Every doc page and every example policy file.
for f in "$src"/docs/*.md; do expect+=("/usr/share/doc/bulkhead/$(basename "$f")"); done
while IFS= read -r f; do
    expect+=("/usr/share/doc/bulkhead/examples/policies/${f#"$src"/policies/}")
done < <(find "$src/policies" -type f)
grep -qx /lib/systemd/system/bulkhead-agent.service <<<"$files" || fail "no unit in the package"
for f in "${expect[@]}"; do
    grep -qxF "$f" <<<"$files" || fail "$f is not in the package"
done
extra=$(comm -23 <(echo "$files") <(printf '%s\n' "${expect[@]}" | sort -u))
[ -z "$extra" ] || fail "unexpected files in the package: $extra"
grep -qE '^-rwxr-xr-x /usr/bin/bulkhead-agent$' "$tmp/list" || fail "agent mode"
grep -qE '^-rw-r--r-- /etc/bulkhead/agent.yaml$' "$tmp/list" || fail "agent.yaml mode"
grep -qE '^lrwxrwxrwx /etc/libvirt/hooks/qemu.d/bulkhead$' "$tmp/list" || fail "libvirt hook link"
dpkg-deb -c "$deb" >"$tmp/full"
grep -qF "qemu.d/bulkhead -> /usr/lib/bulkhead/bulkhead-libvirt-hook" "$tmp/full" ||
    fail "libvirt hook link target"

step "contents"
dpkg-deb -x "$deb" "$tmp/x"
for page in bulkhead.8 bulkhead-agent.8; do
    gzip -dc "$tmp/x/usr/share/man/man8/$page.gz" | cmp -s - "$src/packaging/man/$page" ||
        fail "$page.gz is not packaging/man/$page"
done
file "$tmp/x/usr/bin/bulkhead-agent" | grep -q ', stripped' || fail "bulkhead-agent not stripped"
cmp -s "$tmp/x/etc/bulkhead/agent.yaml" "$src/packaging/agent.yaml" || fail "agent.yaml"
cmp -s "$tmp/x/etc/bulkhead/controller.yaml" "$src/packaging/controller.yaml" || fail "controller.yaml"

# --- the throwaway root --------------------------------------------------
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log" "$root/etc"
touch "$root/var/lib/dpkg/status"
printf 'root:x:0:\nadm:x:4:\n' >"$root/etc/group"
printf 'root:*::\nadm:*::\n' >"$root/etc/gshadow"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 640 "$root/etc/gshadow" "$root/etc/shadow"
host_group=$(sha256sum /etc/group)

sentinel=$tmp/sentinel
mkdir -p "$sentinel"
for cmd in systemctl deb-systemd-invoke; do
    printf '#!/bin/sh\necho "%s $*" >>%s/calls\n' "$cmd" "$tmp" >"$sentinel/$cmd"
    chmod +x "$sentinel/$cmd"
done

dpkg_root() {
    PATH="$sentinel:$PATH" dpkg --root="$root" --force-script-chrootless --force-depends \
        --log="$root/var/log/dpkg.log" "$@" >>"$tmp/dpkg.log" 2>&1 ||
        { cat "$tmp/dpkg.log"; fail "dpkg $*"; }
}
status() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' bulkhead 2>/dev/null || true; }
wants=$root/etc/systemd/system/multi-user.target.wants/bulkhead-agent.service
dsh_state=$root/var/lib/systemd/deb-systemd-helper-enabled

step "install into $root"
dpkg_root -i "$deb"
[ "$(status)" = "install ok installed" ] || fail "status after install: $(status)"
# -L too: a link's absolute target is inside the root, not on this host.
for f in "${expect[@]}"; do [ -e "$root$f" ] || [ -L "$root$f" ] || fail "$f not installed"; done
version=$(dpkg-deb -f "$deb" Version)
[ "$("$root/usr/bin/bulkhead" --version)" = "bulkhead ${version%-*}" ] ||
    fail "installed bulkhead --version is not the package's version ${version%-*}"
[ "$("$root/usr/bin/bulkhead-agent" --version)" = "bulkhead-agent ${version%-*}" ] ||
    fail "installed bulkhead-agent --version"
"$root/usr/bin/bulkhead-agent" --help | grep -q -- --socket-group || fail "installed agent --help"
gline=$(grep '^bulkhead:' "$root/etc/group") || fail "no bulkhead group in the root's /etc/group"
gid=$(cut -d: -f3 <<<"$gline")
[ "$gid" -ge 100 ] && [ "$gid" -lt 1000 ] || fail "bulkhead group is not a system group (gid $gid)"
grep -q '^bulkhead:' "$root/etc/gshadow" || fail "no bulkhead group in gshadow"
[ "$(sha256sum /etc/group)" = "$host_group" ] || fail "the host's /etc/group changed"
echo "group bulkhead: gid $gid"
[ -L "$wants" ] || fail "not enabled: no $wants"
[ "$(readlink "$wants")" = /lib/systemd/system/bulkhead-agent.service ] || fail "wants -> $(readlink "$wants")"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/bulkhead-controller.service" ] ||
    fail "the controller unit must not be enabled by the package"
[ -e "$dsh_state/bulkhead-agent.service.dsh-also" ] || fail "no deb-systemd-helper state"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}\n' bulkhead |
    grep -q '/etc/bulkhead/agent.yaml [0-9a-f]\{32\}' || fail "agent.yaml not a registered conffile"

step "upgrade in place keeps the local config, the group and the enable state"
echo "# local change" >>"$root/etc/bulkhead/agent.yaml"
dpkg_root -i "$deb"
[ "$(status)" = "install ok installed" ] || fail "status after upgrade: $(status)"
tail -1 "$root/etc/bulkhead/agent.yaml" | grep -qx '# local change' || fail "local config lost"
[ "$(grep -c '^bulkhead:' "$root/etc/group")" -eq 1 ] || fail "group duplicated"
[ "$(grep '^bulkhead:' "$root/etc/group" | cut -d: -f3)" = "$gid" ] || fail "gid changed"
[ -L "$wants" ] || fail "no longer enabled after upgrade"

step "an admin's disable survives an upgrade"
systemctl --root="$root" --quiet disable bulkhead-agent.service
[ ! -e "$wants" ] || fail "disable left $wants"
dpkg_root -i "$deb"
[ ! -e "$wants" ] || fail "the upgrade re-enabled a disabled agent"
systemctl --root="$root" --quiet enable bulkhead-agent.service

step "remove"
mkdir -p "$root/var/lib/bulkhead" && echo state >"$root/var/lib/bulkhead/state.pb"
dpkg_root -r bulkhead
[ "$(status)" = "deinstall ok config-files" ] || fail "status after remove: $(status)"
[ ! -e "$root/usr/bin/bulkhead-agent" ] || fail "binary left after remove"
[ ! -e "$root/lib/systemd/system/bulkhead-agent.service" ] || fail "unit left after remove"
[ -e "$root/etc/bulkhead/agent.yaml" ] || fail "remove must keep the conffile"

step "purge"
dpkg_root -P bulkhead
[ "$(status)" = "" ] || [ "$(status)" = "unknown ok not-installed" ] || fail "status after purge: $(status)"
left=$(cd "$root" && find . \( -type f -o -type l \) \
    ! -path './var/lib/dpkg/*' ! -path './var/log/*' \
    ! -name group ! -name gshadow ! -name passwd ! -name shadow \
    ! -name 'group-' ! -name 'gshadow-' ! -name 'passwd-' ! -name 'shadow-' | sort)
[ -z "$left" ] || fail "left after purge: $left"
[ ! -e "$root/etc/bulkhead" ] || fail "/etc/bulkhead left after purge"
[ ! -e "$root/var/lib/bulkhead" ] || fail "/var/lib/bulkhead left after purge"
grep -q '^bulkhead:' "$root/etc/group" || fail "purge is documented to keep the group"

step "the running system was never touched"
[ ! -e "$tmp/calls" ] || fail "maintainer scripts called: $(cat "$tmp/calls")"

echo "PASS"
