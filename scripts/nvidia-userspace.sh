#!/usr/bin/env bash
# Debian 12's real NVIDIA user-space libraries (non-free, branch 535), unpacked into a folder, for the tests of
# the GPU doctor's NVML and CUDA layers: libcuda.so.1 (libcuda1), libnvidia-ml.so.1 (libnvidia-ml1) and the PTX
# JIT (libnvidia-ptxjitcompiler1). About 11 MB; no kernel module, so they answer with their real error paths.
#
#   scripts/nvidia-userspace.sh [DIR]    (default .cache/nvidia-userspace) -> prints DIR/lib, the library folder
#
# The system's apt state is never changed: a private apt configuration (its own sources list, lists and cache
# folders under DIR/apt) adds `non-free` to a copy of this machine's Debian sources, then `apt-get download` and
# `dpkg -x`. Reruns reuse what is there (DIR/.done). Needs Debian's apt and network access to its mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-.cache/nvidia-userspace}")
packages=(libcuda1 libnvidia-ml1 libnvidia-ptxjitcompiler1)

if [[ -f $dir/.done ]]; then
    echo "$dir/lib"
    exit 0
fi
command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
    { echo "error: needs Debian's apt-get and dpkg" >&2; exit 2; }
sources=(/etc/apt/sources.list.d/*.sources)
[[ -e ${sources[0]} ]] || { echo "error: no deb822 sources in /etc/apt/sources.list.d" >&2; exit 2; }

rm -rf "$dir"
apt="$dir/apt"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/archives/partial" "$dir/debs" "$dir/root"
# The copy of the sources: Debian's own entries get non-free beside main (the driver's libraries live there).
for src in "${sources[@]}"; do
    sed -E '/^Components:/{/non-free([^-]|$)/!s/$/ non-free/}' "$src" >"$apt/sources.list.d/$(basename "$src")"
done
cat >"$apt/apt.conf" <<EOF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt/sources.list.d";
Dir::State::Lists "$apt/lists";
Dir::Cache::Archives "$apt/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Get::List-Cleanup "false";
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$apt/apt.conf"
apt-get update -qq -o Debug::NoLocking=1 >&2
(cd "$dir/debs" && apt-get download -qq "${packages[@]}" >&2)
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
done
# One folder with the libraries (the packages put them in the multiarch folder, some under nvidia/current).
mkdir -p "$dir/lib"
find "$dir/root" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -a -t "$dir/lib" {} +
for lib in libcuda.so.1 libnvidia-ml.so.1; do
    [[ -e $dir/lib/$lib ]] || { echo "error: $lib not found in ${packages[*]}" >&2; exit 1; }
done
dpkg-deb -f "$dir"/debs/libcuda1_*.deb Version >"$dir/version"
touch "$dir/.done"
echo "$dir/lib"
