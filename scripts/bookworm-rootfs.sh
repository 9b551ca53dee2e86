#!/usr/bin/env bash
# Print the path of a cached Debian 12 minbase rootfs tarball, building it once with debootstrap.
# Shared by the Ansible chroot tests and the podman base image, so CI debootstraps only once.
# Usage: scripts/bookworm-rootfs.sh [CACHE_DIR]   (default .cache/rootfs)
set -euo pipefail
cache_dir=${1:-.cache/rootfs}
tarball="$cache_dir/bookworm-minbase.tar"
mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
flock 9
if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
    sources=/etc/apt/sources.list.d/debian.sources
    mirror=$(awk '/^URIs:/{print $2; exit}' "$sources" 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    work=$(mktemp -d "$cache_dir/build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "debootstrap bookworm from $mirror (about a minute)..." >&2
    debootstrap --variant=minbase --include=python3,python3-apt,ca-certificates bookworm "$work/root" "$mirror" >"$work/log" 2>&1 \
        || { tail -20 "$work/log" >&2; echo "error: debootstrap failed" >&2; exit 1; }
    # What the machine's apt and TLS need inside: its sources, resolver and CA bundle (the PyPI proxy's CA is in it).
    [[ -f $sources ]] && install -D -m 0644 "$sources" "$work/root$sources" && rm -f "$work/root/etc/apt/sources.list"
    cp -L /etc/resolv.conf "$work/root/etc/resolv.conf" 2>/dev/null || true
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt"
    tar -C "$work/root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
fi
echo "$tarball"
