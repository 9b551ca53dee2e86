#!/usr/bin/env bash
# Start JupyterLab from the image with the current directory mounted at /work (files stay the caller's: the
# container runs as `--user $(id -u):$(id -g)`), wait until it answers, print the URL with its token.
# Settings: IMAGE, JUPYTER_PORT (8888), JUPYTER_BIND (127.0.0.1), NAME, ENGINE, and the credentials as files,
# mounted read-only (an -e value shows in `ps` and `docker inspect`):
#   JUPYTER_TOKEN_FILE          default ~/.config/keras-workstation/jupyter-token (the Ansible service's);
#                               created with a new token when missing
#   JUPYTER_PASSWORD_HASH_FILE  optional: a hash from `python -c "from jupyter_server.auth import passwd; print(passwd())"`
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
if [[ -n ${JUPYTER_TOKEN+set} ]]; then
    echo "error: JUPYTER_TOKEN would be on the engine's command line (ps, docker inspect): put the token in a" \
        "file and set JUPYTER_TOKEN_FILE=FILE instead" >&2
    exit 2
fi
token_file=${JUPYTER_TOKEN_FILE:-${XDG_CONFIG_HOME:-$HOME/.config}/keras-workstation/jupyter-token}
if [[ ! -e $token_file ]]; then
    (umask 077 && mkdir -p "$(dirname "$token_file")" &&
        python3 -c 'import secrets; print(secrets.token_hex(24))' >"$token_file")
    echo "new token in $token_file"
fi
# An empty or blank file is not replaced: the server in the container refuses it (workloads/service/jupyter_auth.py).
[[ -f $token_file && -r $token_file ]] || { echo "error: cannot read the token file $token_file" >&2; exit 2; }
token=$(<"$token_file")
token=${token#"${token%%[![:space:]]*}"} token=${token%"${token##*[![:space:]]}"} # strip, like the server
mounts=(-v "$(realpath "$token_file"):/run/keras-workstation/jupyter-token:ro"
    -e JUPYTER_TOKEN_FILE=/run/keras-workstation/jupyter-token)
if [[ -n ${JUPYTER_PASSWORD_HASH_FILE:-} ]]; then
    [[ -r $JUPYTER_PASSWORD_HASH_FILE ]] || { echo "error: cannot read JUPYTER_PASSWORD_HASH_FILE=$JUPYTER_PASSWORD_HASH_FILE" >&2; exit 2; }
    mounts+=(-v "$(realpath "$JUPYTER_PASSWORD_HASH_FILE"):/run/keras-workstation/jupyter-password-hash:ro"
        -e JUPYTER_PASSWORD_HASH_FILE=/run/keras-workstation/jupyter-password-hash)
fi

"${engine[@]}" image inspect "$image" >/dev/null 2>&1 ||
    { echo "error: image $image not found: build it with 'make image'" >&2; exit 2; }
gpu=()
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    # Docker: the NVIDIA Container Toolkit's --gpus; podman: its CDI spec (nvidia-ctk cdi generate).
    if [[ ${engine[0]} == docker ]]; then gpu=(--gpus all); else gpu=(--device nvidia.com/gpu=all); fi
fi

cid=$("${engine[@]}" run -d --name "$name" --user "$(id -u):$(id -g)" -p "$bind:$port:8888" \
    "${mounts[@]}" -v "$workdir:/work" "${gpu[@]}" "$image")
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
