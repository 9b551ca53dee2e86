#!/usr/bin/env bash
# Container entry point (PID 1 is tini). Commands:
#   jupyter (default)   JupyterLab on port 8888, token required (JUPYTER_TOKEN_FILE, JUPYTER_TOKEN, or generated)
#   smoke-test [ARGS]   the smoke tests (quick level by default); the report goes to /work/reports/
#   banner              only the GPU banner
#   doctor [ARGS]       the layered GPU diagnosis (python -m gpu_doctor): exit 0 healthy or no GPU, 1 broken
#   anything else       run as given (bash, python ...)
# Started as root (`--user root`), it drops to NB_UID:NB_GID (default: the owner of /work, else 1000) so that
# files written in the mounted /work belong to the host user. `--user "$(id -u):$(id -g)"` does the same directly.
set -euo pipefail
kw=/opt/keras-workstation

# A secret file mounted for the host user may not be readable by the user this drops to: hand over a private
# copy (root reads it here). The value never goes on a command line or into the environment.
private_copy() {
    local var=$1 uid=$2 gid=$3 src dir
    src=${!var:-}
    [[ -n $src && -r $src ]] || return 0
    dir=$(mktemp -d /tmp/keras-workstation-secrets.XXXXXX)
    install -m 0600 -o "$uid" -g "$gid" -- "$src" "$dir/${src##*/}"
    chown "$uid:$gid" "$dir"
    export "$var=$dir/${src##*/}"
}

if [[ $(id -u) == 0 ]]; then
    uid=${NB_UID:-$(stat -c %u /work)}
    gid=${NB_GID:-$(stat -c %g /work)}
    if ! [[ $uid =~ ^[0-9]{1,10}$ && $gid =~ ^[0-9]{1,10}$ ]] || ((10#$uid > 4294967294 || 10#$gid > 4294967294)); then
        echo "error: NB_UID and NB_GID must be numbers below 4294967295 (got '$uid' and '$gid')" >&2
        exit 2
    fi
    uid=$((10#$uid)) gid=$((10#$gid)) # as numbers: "00" is uid 0 too
    # A root-owned mount (or NB_UID=0, NB_GID=0) still runs as the unprivileged notebook user and group.
    if ((uid == 0)); then uid=1000; fi
    if ((gid == 0)); then gid=1000; fi
    chown -R "$uid:$gid" /home/jovyan
    private_copy JUPYTER_TOKEN_FILE "$uid" "$gid"
    private_copy JUPYTER_PASSWORD_HASH_FILE "$uid" "$gid"
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$0" "$@"
fi

# An arbitrary --user has no home of its own in the image: give it a writable one.
if [[ ! -w $HOME ]]; then
    export HOME=/tmp/home-$(id -u)
    mkdir -p "$HOME"
fi

banner() {
    python "$kw/bin/banner.py" || echo "[keras-workstation] warning: the GPU banner failed (see above)" >&2
}

cmd=${1:-jupyter}
[[ $# -gt 0 ]] && shift
case $cmd in
jupyter | lab)
    banner
    # The image's notebooks, next to the user's files, unless /work has its own notebooks/ (the repository's
    # jupytext sources open as notebooks too). KW_COPY_NOTEBOOKS=0 leaves /work alone.
    if [[ ${KW_COPY_NOTEBOOKS:-1} == 1 && ! -e /work/notebooks && -w /work ]]; then
        cp -r "$kw/notebooks" /work/notebooks
        echo "[keras-workstation] copied the workload notebooks to /work/notebooks"
    fi
    # No credential given at all: generate a token into a private file. It is not printed: a container log
    # is kept and shown to more people than the token should be (`jupyter server list` in the container shows
    # it). A credential given empty is not replaced: the server config refuses it (workloads/service/jupyter_auth.py).
    if [[ -z ${JUPYTER_TOKEN+set}${JUPYTER_TOKEN_FILE:-}${JUPYTER_PASSWORD_HASH+set}${JUPYTER_PASSWORD_HASH_FILE:-} ]]; then
        secrets=$(mktemp -d /tmp/keras-workstation-secrets.XXXXXX)
        (umask 077 && python -c 'import secrets; print(secrets.token_hex(24))' >"$secrets/jupyter-token")
        export JUPYTER_TOKEN_FILE=$secrets/jupyter-token
        echo "[keras-workstation] generated a token; it is not printed in this log. See it with:" \
            "docker exec CONTAINER jupyter server list   (or choose one: -v FILE:/run/keras-workstation/jupyter-token:ro" \
            "-e JUPYTER_TOKEN_FILE=/run/keras-workstation/jupyter-token)"
    fi
    echo "[keras-workstation] JupyterLab: http://localhost:8888/lab (publish the port with -p 127.0.0.1:8888:8888)"
    exec jupyter lab --config="$kw/jupyter_server_config.py" "$@"
    ;;
smoke-test)
    banner
    out=/work/reports/smoke-$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$out" 2>/dev/null || {
        echo "error: cannot write $out: mount a directory you own at /work and run with --user \"\$(id -u):\$(id -g)\"" >&2
        exit 2
    }
    echo "[keras-workstation] smoke tests -> $out"
    exec python -m smoke_tests --level quick --out "$out" "$@"
    ;;
banner)
    exec python "$kw/bin/banner.py" "$@"
    ;;
doctor)
    exec python -m gpu_doctor "$@"
    ;;
*)
    exec "$cmd" "$@"
    ;;
esac
