#!/usr/bin/env bash
# Build signed local apt repositories of dummy packages (equivs) that mirror the real package relations of
# Ubuntu's NVIDIA driver, NVIDIA's container toolkit and Docker CE, so their Ansible paths can run where those
# archives cannot be reached. Relations follow the real debian/control files:
#   - canonical/nvidia-graphics-drivers, branch 580-noble: nvidia-driver-580[-open] -> nvidia-dkms-580[-open]
#     (Provides/Conflicts nvidia-dkms-kernel), nvidia-kernel-source-580[-open] (Conflicts nvidia-kernel-source),
#     nvidia-kernel-common-580, libnvidia-compute-580, nvidia-utils-580; nvidia-headless-no-dkms-580[-open];
#   - branch 570-noble after LP: #2147038: nvidia-driver-570 etc. are transitional (Section non-free/oldlibs,
#     "Transitional package for upgrades", Depends on the 580 package of the same name);
#   - linux-restricted-modules: linux-modules-nvidia-580-open-<kernel> (signed, precompiled; here only for the
#     open flavour, so the proprietary one falls back to DKMS) and its flavour metapackage;
#   - NVIDIA's toolkit: nvidia-container-toolkit (= base) and libnvidia-container-tools (>=), in two releases;
#   - Docker CE: containerd.io Provides/Conflicts/Replaces containerd and runc.
# The "kernel modules" are tiny ELF files with a .modinfo section, so modinfo reads their version and license
# (NVIDIA for proprietary, Dual MIT/GPL for open, as the real ones); nvidia-ctk is a stand-in that edits daemon.json.
# Usage: scripts/dummy-nvidia-repo.sh OUT_DIR KERNEL_RELEASE [SUITE]   (e.g. 6.8.0-59-generic bookworm)
# Writes OUT_DIR/repo (flat: Packages, Release, InRelease, key.asc, key.fpr) and OUT_DIR/docker-repo
# (dists/SUITE/stable layout, as Docker's repository: suite = the release codename, component "stable").
set -euo pipefail
[[ $# -eq 2 || $# -eq 3 ]] || { echo "usage: $0 OUT_DIR KERNEL_RELEASE [SUITE]" >&2; exit 2; }
out=$1 kernel=$2 suite=${3:-bookworm}
for tool in equivs-build dpkg-scanpackages gpg objcopy; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install equivs dpkg-dev gpg binutils)" >&2; exit 2; }
done
repo="$out/repo" docker_repo="$out/docker-repo" build="$out/build"
rm -rf "$repo" "$docker_repo" "$build" && mkdir -p "$repo" "$docker_repo" "$build"
flavour=${kernel#*-*-}
drv=580.95.05 drv_deb=580.95.05-0ubuntu0.24.04.2 old_deb=570.211.01-0ubuntu1.24.04.1

cat >"$build/nvidia-ctk" <<'CTK'
#!/usr/bin/python3
"""Stand-in for nvidia-ctk: `nvidia-ctk runtime configure --runtime=docker` adds the nvidia runtime."""
import json, pathlib, sys
if sys.argv[1:3] != ["runtime", "configure"] or "--runtime=docker" not in sys.argv:
    sys.exit(f"dummy nvidia-ctk: unsupported arguments {sys.argv[1:]}")
path = pathlib.Path("/etc/docker/daemon.json")
config = json.loads(path.read_text()) if path.exists() else {}
config.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=4) + "\n")
print(f"INFO Wrote updated config to {path}")
CTK
printf '#!/bin/sh\ngetent group docker >/dev/null || groupadd --system docker\n' >"$build/docker-ce.postinst"

module() {  # flavour license: FLAVOUR/nvidia.ko, an ELF object whose .modinfo section modinfo reads
    mkdir -p "$build/$1"
    printf 'version=%s\0license=%s\0description=NVIDIA kernel module (keras-workstation dummy)\0' "$drv" "$2" >"$build/$1/modinfo"
    objcopy -I binary -O elf64-x86-64 -B i386:x86-64 --rename-section .data=.modinfo "$build/$1/modinfo" "$build/$1/nvidia.ko"
}
module proprietary NVIDIA
module open "Dual MIT/GPL"

# package NAME VERSION SOURCE [FIELD: VALUE]... : one equivs package; extra lines become control fields.
package() {
    local name=$1 version=$2 source=$3; shift 3
    {
        echo "Section: misc"; echo "Priority: optional"; echo "Standards-Version: 3.9.2"
        echo "Source: $source"; echo "Package: $name"; echo "Version: $version"
        echo "Maintainer: keras-workstation CI <ci@localhost>"
        for field in "$@"; do echo "$field"; done
        grep -q '^Description:' <<<"$(printf '%s\n' "$@")" || {
            echo "Description: dummy $name for the keras-workstation Ansible tests"
            echo " Installs nothing real; stands in for the package of the same name."
        }
    } >"$build/$name-$version.ctl"
    (cd "$build" && equivs-build "$name-$version.ctl" >"$name-$version.log" 2>&1) || { cat "$build/$name-$version.log" >&2; exit 1; }
}

src580=nvidia-graphics-drivers-580 src570=nvidia-graphics-drivers-570
package nvidia-kernel-common-580 "$drv_deb" $src580 "Provides: nvidia-kernel-common" "Conflicts: nvidia-kernel-common"
package libnvidia-compute-580 "$drv_deb" $src580 "Provides: libnvidia-compute, libnvidia-ml1" "Conflicts: libnvidia-compute"
package nvidia-utils-580 "$drv_deb" $src580 "Provides: nvidia-utils, nvidia-smi" "Conflicts: nvidia-utils, nvidia-smi"
for open in "" -open; do
    license=$([[ -z $open ]] && echo proprietary || echo open)
    package "nvidia-kernel-source-580$open" "$drv_deb" $src580 \
        "Provides: nvidia-kernel-source" "Conflicts: nvidia-kernel-source" "Replaces: nvidia-kernel-source"
    package "nvidia-dkms-580$open" "$drv_deb" $src580 \
        "Depends: nvidia-kernel-source-580$open (>= $drv), nvidia-kernel-common-580 (>= $drv)" \
        "Provides: nvidia-dkms-kernel" "Conflicts: nvidia-dkms-kernel" "Replaces: nvidia-dkms-kernel" \
        "Files: $license/nvidia.ko /lib/modules/$kernel/updates/dkms/"
    package "nvidia-driver-580$open" "$drv_deb" $src580 \
        "Depends: libnvidia-compute-580 (= $drv_deb), nvidia-dkms-580$open (>= $drv), nvidia-kernel-common-580 (>= $drv), nvidia-kernel-source-580$open (= $drv_deb), nvidia-utils-580 (= $drv_deb)"
    package "nvidia-headless-no-dkms-580$open" "$drv_deb" $src580 \
        "Depends: nvidia-kernel-common-580 (>= $drv), nvidia-kernel-source-580$open (= $drv_deb), libnvidia-compute-580 (= $drv_deb)"
    # The 570 branch after LP: #2147038: empty packages that depend on their 580 counterparts.
    for name in nvidia-driver nvidia-dkms; do
        package "$name-570$open" "$old_deb" $src570 "Section: non-free/oldlibs" "Depends: $name-580$open" \
            "Description: $name-570$open transitional package" " Transitional package for upgrades. This package can be safely removed."
    done
done
# Canonical's precompiled, signed modules (open flavour only here) and the flavour metapackage that follows the kernel.
package "linux-modules-nvidia-580-open-$kernel" "${kernel%-*}.1+$drv" linux-restricted-modules \
    "Depends: nvidia-kernel-common-580 (>= $drv)" "Files: open/nvidia.ko /lib/modules/$kernel/kernel/nvidia-580/"
package "linux-modules-nvidia-580-open-$flavour" "${kernel%-*}.1" linux-restricted-modules \
    "Depends: linux-modules-nvidia-580-open-$kernel"
package "linux-headers-$kernel" "${kernel%-*}.1" linux
# NVIDIA's container toolkit, two releases: an unpinned tools/library would come from the newer one.
for v in 1.17.8-1 1.18.0-1; do
    package libnvidia-container1 "$v" libnvidia-container
    package libnvidia-container-tools "$v" libnvidia-container "Depends: libnvidia-container1 (>= ${v%-*})"
    package nvidia-container-toolkit-base "$v" nvidia-container-toolkit "Depends: python3" "Files: nvidia-ctk /usr/bin/"
    package nvidia-container-toolkit "$v" nvidia-container-toolkit \
        "Depends: nvidia-container-toolkit-base (= $v), libnvidia-container-tools (>= ${v%-*}), libnvidia-container-tools (<< 2.0.0)"
done
mv "$build"/*.deb "$repo/"
# Docker CE (docker-ce's postinst creates the docker group, as the real one does).
docker=5:28.5.2-1~debian.12~bookworm
package containerd.io 1.7.28-1 containerd.io "Provides: containerd, runc" "Conflicts: containerd, runc" "Replaces: containerd, runc"
package docker-ce-cli "$docker" docker-ce
package docker-ce "$docker" docker-ce "Depends: containerd.io (>= 1.7.27), docker-ce-cli" "Conflicts: docker.io, docker-engine" \
    "Postinst: docker-ce.postinst"
package docker-buildx-plugin 0.29.1-1~debian.12~bookworm docker-buildx
package docker-compose-plugin 2.40.3-1~debian.12~bookworm docker-compose
mkdir -p "$docker_repo/dists/$suite/stable/binary-amd64" "$docker_repo/pool"
mv "$build"/*.deb "$docker_repo/pool/"

export GNUPGHOME="$out/gnupg"
rm -rf "$GNUPGHOME" && mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "keras-workstation dummy repo <ci@localhost>" ed25519 sign never 2>/dev/null
release() {  # DIR SUITE FILE...: Release + InRelease over the index files, signed with the throw-away key
    local dir=$1 name=$2; shift 2
    {
        echo "Origin: keras-workstation-dummy"; echo "Label: keras-workstation-dummy"; echo "Suite: $name"; echo "Codename: $name"
        echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
        echo "SHA256:"
        for f in "$@"; do printf ' %s %s %s\n' "$(sha256sum "$dir/$f" | cut -d' ' -f1)" "$(stat -c %s "$dir/$f")" "$f"; done
    } >"$dir/Release"
    gpg --batch --quiet --yes --clearsign -o "$dir/InRelease" "$dir/Release"
}
(cd "$repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages)
release "$repo" local Packages
(cd "$docker_repo" && dpkg-scanpackages --multiversion pool /dev/null 2>/dev/null >"dists/$suite/stable/binary-amd64/Packages")
release "$docker_repo/dists/$suite" "$suite" stable/binary-amd64/Packages
for dir in "$repo" "$docker_repo"; do gpg --batch --quiet --armor --export >"$dir/key.asc"; done
gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" {print $10; exit}' >"$repo/key.fpr"
cp "$repo/key.fpr" "$docker_repo/key.fpr"
gpgconf --kill gpg-agent 2>/dev/null || true
echo "$repo"
