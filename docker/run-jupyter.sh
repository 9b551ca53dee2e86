#!/usr/bin/env bash
# Start JupyterLab from the image with the current directory mounted at /work (files stay the caller's: the
# container runs as `--user $(id -u):$(id -g)`), wait until it answers, print the URL with its token.
# Settings: IMAGE, JUPYTER_PORT (8888), JUPYTER_BIND (127.0.0.1), JUPYTER_TOKEN (generated), NAME, ENGINE.
set -euo pipefail

image=${IMAGE:-localhost/keras-workstation:gpu}
port=${JUPYTER_PORT:-8888}
bind=${JUPYTER_BIND:-127.0.0.1}
name=${NAME:-keras-workstation-jupyter}
workdir=${WORKDIR:-$PWD}
if [[ -n ${ENGINE:-} ]]; then
    read -ra engine <<<"$ENGINE"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=(docker)
else
    engine=(podman --runtime runc)
fi
token=${JUPYTER_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(24))')}

"${engine[@]}" image inspect "$image" >/dev/null 2>&1 ||
    { echo "error: image $image not found: build it with 'make image'" >&2; exit 2; }
gpu=()
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    # Docker: the NVIDIA Container Toolkit's --gpus; podman: its CDI spec (nvidia-ctk cdi generate).
    if [[ ${engine[0]} == docker ]]; then gpu=(--gpus all); else gpu=(--device nvidia.com/gpu=all); fi
fi

cid=$("${engine[@]}" run -d --name "$name" --user "$(id -u):$(id -g)" -p "$bind:$port:8888" \
    -e JUPYTER_TOKEN="$token" -v "$workdir:/work" "${gpu[@]}" "$image")
for _ in $(seq 120); do
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/api', timeout=2)" 2>/dev/null; then
        "${engine[@]}" logs "$cid" 2>&1 | grep -F '[keras-workstation] GPU' || true
        echo "JupyterLab: http://$bind:$port/lab?token=$token"
        echo "stop it with: ${engine[*]} rm -f $name"
        exit 0
    fi
    if [[ $("${engine[@]}" inspect --format '{{.State.Status}}' "$cid") != running ]]; then break; fi
    sleep 1
done
"${engine[@]}" logs "$cid" 2>&1 | tail -20 >&2
echo "error: JupyterLab did not start (container $name left for inspection; remove it with: ${engine[*]} rm -f $name)" >&2
exit 1
