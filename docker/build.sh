#!/usr/bin/env bash
# Build the keras-workstation image with docker (when an engine runs) or podman, and record its size and build
# time in reports/image/build.json. Settings come from the environment (the Makefile passes them):
#   VARIANT=gpu|cpu       gpu (default): tensorflow[and-cuda] wheels; cpu: no CUDA wheels
#   BASE_IMAGE=IMAGE      default: the Dockerfile's digest-pinned Ubuntu 24.04;
#                         "local-bookworm": a Debian 12 base imported from scripts/bookworm-rootfs.sh (offline CI)
#   TAG=NAME              default: localhost/keras-workstation:$VARIANT
#   ENGINE=docker|podman  default: docker if `docker info` works, else podman (with the runc runtime)
#   REUSE=1               skip the build when an image with the same context hash exists (tests)
#   REPORT=FILE           default: reports/image/build.json
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${VARIANT:-gpu}
[[ $variant == gpu || $variant == cpu ]] || { echo "error: VARIANT must be gpu or cpu, not '$variant'" >&2; exit 2; }
tag=${TAG:-localhost/keras-workstation:$variant}
report=${REPORT:-reports/image/build.json}
uv_version=$(sed -n 's/^uv-version *= *"\(.*\)"/\1/p' pyproject.toml)  # the one pin of uv
[[ -n $uv_version ]] || { echo "error: no 'uv-version = \"X.Y.Z\"' line in pyproject.toml" >&2; exit 2; }

if [[ -n ${ENGINE:-} ]]; then
    read -ra engine <<<"$ENGINE"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=(docker)
elif command -v podman >/dev/null; then
    # crun fails on this project's hybrid-cgroup machines; runc works (../shared/ENVIRONMENT.md).
    engine=(podman --runtime runc)
else
    echo "error: no container engine: install Docker (with a running daemon) or podman" >&2
    exit 2
fi

# The variant's extras: the GPU set or the CPU set (gpu_doctor/rules.toml [extras], standard library only).
extras=$(python3 gpu_doctor/rules.py extras --set "$variant" | sed 's/[^ ][^ ]*/--extra &/g')
build_args=(--build-arg "VARIANT=$variant" --build-arg "UV_VERSION=$uv_version" --build-arg "EXTRAS=$extras")
git_rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ $git_rev != unknown && -n $(git status --porcelain -- docker workloads smoke_tests gpu_doctor notebooks pyproject.toml uv.lock 2>/dev/null) ]] &&
    git_rev+="-dirty"
build_args+=(--build-arg "GIT_REVISION=$git_rev")

base=${BASE_IMAGE:-}
if [[ $base == local-bookworm ]]; then
    # Offline base: the shared debootstrap rootfs, imported once per tarball content.
    tarball=$(scripts/bookworm-rootfs.sh)
    base=localhost/bookworm-base:$(sha256sum "$tarball" | cut -c1-12)
    if ! "${engine[@]}" image exists "$base" 2>/dev/null && ! "${engine[@]}" image inspect "$base" >/dev/null 2>&1; then
        echo "importing $tarball as $base" >&2
        "${engine[@]}" import - "$base" <"$tarball" >/dev/null
    fi
fi
[[ -n $base ]] && build_args+=(--build-arg "BASE_IMAGE=$base")

# The context hash: every file the build copies, plus the settings. Same hash = same image.
context_hash=$(
    {
        find docker workloads smoke_tests gpu_doctor notebooks pyproject.toml uv.lock README.md .dockerignore -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.ipynb_checkpoints/*' -print0 2>/dev/null |
            sort -z | xargs -0 sha256sum
        echo "$variant $base $uv_version $extras"
    } | sha256sum | cut -c1-16
)

if [[ ${REUSE:-0} == 1 ]] &&
    [[ $("${engine[@]}" image inspect --format '{{index .Config.Labels "org.keras-workstation.context"}}' "$tag" 2>/dev/null) == "$context_hash" ]]; then
    echo "image $tag is up to date (context $context_hash): not rebuilt" >&2
    seconds=null reused=1
else
    reused=0
    extra=()
    if [[ ${engine[0]} == podman ]]; then
        # docker format keeps HEALTHCHECK and SHELL; host network reaches the package mirrors through the proxy.
        extra+=(--format docker --network host)
    fi
    echo "building $tag (variant $variant, base ${base:-Dockerfile default}) with ${engine[*]}" >&2
    previous=$("${engine[@]}" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    start=$(date +%s)
    "${engine[@]}" build "${extra[@]}" "${build_args[@]}" \
        --label "org.keras-workstation.context=$context_hash" \
        -f docker/Dockerfile -t "$tag" .
    seconds=$(($(date +%s) - start))
    # The image this tag pointed to is now untagged: remove it (3 GB each) unless a container still uses it.
    if [[ -n $previous && $previous != $("${engine[@]}" image inspect --format '{{.Id}}' "$tag") ]]; then
        "${engine[@]}" rmi "$previous" >/dev/null 2>&1 || true
    fi
fi

size=$("${engine[@]}" image inspect --format '{{.Size}}' "$tag")
mkdir -p "$(dirname "$report")"
python3 - "$report" "$tag" "$variant" "${engine[0]}" "$size" "$seconds" "$context_hash" "${base:-default}" "$git_rev" "$reused" <<'EOF'
import json, sys
report, tag, variant, engine, size, seconds, context, base, git_rev, reused = sys.argv[1:]
previous = {}
try:
    with open(report) as fh:
        previous = json.load(fh)
except (OSError, ValueError):
    pass
if seconds == "null" and previous.get("context_hash") == context:
    seconds = str(previous.get("build_seconds"))  # reused: keep the time of the build that made it
data = {
    "tag": tag, "variant": variant, "engine": engine, "base_image": base, "git_revision": git_rev,
    "size_bytes": int(size), "size_mb": round(int(size) / 1e6, 1),
    "build_seconds": None if seconds in ("null", "None") else int(seconds), "context_hash": context,
    "reused": reused == "1",
}
with open(report, "w") as fh:
    json.dump(data, fh, indent=2)
    fh.write("\n")
built = f"built in {data['build_seconds']} s" + (" (reused, unchanged since)" if data["reused"] else "")
print(f"image {tag}: {data['size_mb']} MB, {built} -> {report}")
EOF
