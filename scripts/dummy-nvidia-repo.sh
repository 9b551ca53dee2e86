#!/usr/bin/env bash
# Build a signed local apt repository of dummy NVIDIA packages (equivs) so the GPU path of the Ansible roles
# can run where Ubuntu's and NVIDIA's repositories cannot be reached. The packages install nothing real
# except a stand-in `nvidia-ctk` that edits /etc/docker/daemon.json the way the real one does.
# Usage: scripts/dummy-nvidia-repo.sh OUT_DIR DRIVER_BRANCH KERNEL_RELEASE
# Writes OUT_DIR/repo (flat repo: *.deb, Packages, Release, InRelease) and OUT_DIR/repo/key.asc.
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 OUT_DIR DRIVER_BRANCH KERNEL_RELEASE" >&2; exit 2; }
out=$1 branch=$2 kernel=$3
for tool in equivs-build dpkg-scanpackages gpg; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install equivs dpkg-dev gpg)" >&2; exit 2; }
done
repo="$out/repo" build="$out/build"
rm -rf "$repo" "$build" && mkdir -p "$repo" "$build"

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

control() {  # name version depends [files]
    {
        echo "Section: misc"; echo "Priority: optional"; echo "Standards-Version: 3.9.2"
        echo "Package: $1"; echo "Version: $2"; echo "Maintainer: keras-workstation CI <ci@localhost>"
        [[ -n $3 ]] && echo "Depends: $3"
        [[ -n ${4:-} ]] && echo "Files: $4"
        echo "Description: dummy $1 for the keras-workstation Ansible tests"
        echo " Installs nothing real; stands in for the package of the same name."
    } >"$build/$1.ctl"
    (cd "$build" && equivs-build "$1.ctl" >"$1.log" 2>&1) || { cat "$build/$1.log" >&2; exit 1; }
}
control "nvidia-dkms-$branch" "$branch.0-0dummy1" ""
control "nvidia-driver-$branch" "$branch.0-0dummy1" "nvidia-dkms-$branch"
control "linux-headers-$kernel" "1.0-0dummy1" ""
control nvidia-container-toolkit "1.17.8-1" "python3" "nvidia-ctk /usr/bin/"
mv "$build"/*.deb "$repo/"

cd "$repo"
dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages
{
    echo "Origin: keras-workstation-dummy"; echo "Label: keras-workstation-dummy"; echo "Suite: local"
    echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
    echo "SHA256:"; printf ' %s %s Packages\n' "$(sha256sum Packages | cut -d' ' -f1)" "$(stat -c %s Packages)"
} >Release
export GNUPGHOME="$out/gnupg"
rm -rf "$GNUPGHOME" && mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "keras-workstation dummy repo <ci@localhost>" ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export >key.asc
gpg --batch --quiet --yes --clearsign -o InRelease Release
gpgconf --kill gpg-agent 2>/dev/null || true
echo "$repo"
