#!/usr/bin/env bash
# Container entry point (PID 1 is tini). Commands:
#   jupyter (default)   JupyterLab on port 8888, token required (JUPYTER_TOKEN, or generated and printed once)
#   smoke-test [ARGS]   the smoke tests (quick level by default); the report goes to /work/reports/
#   banner              only the GPU banner
#   doctor [ARGS]       the layered GPU diagnosis (python -m gpu_doctor): exit 0 healthy or no GPU, 1 broken
#   anything else       run as given (bash, python ...)
# Started as root (`--user root`), it drops to NB_UID:NB_GID (default: the owner of /work, else 1000) so that
# files written in the mounted /work belong to the host user. `--user "$(id -u):$(id -g)"` does the same directly.
set -euo pipefail
kw=/opt/keras-workstation

if [[ $(id -u) == 0 ]]; then
    uid=${NB_UID:-$(stat -c %u /work)}
    gid=${NB_GID:-$(stat -c %g /work)}
    # A root-owned mount (or NB_UID=0) still runs as the unprivileged notebook user.
    if [[ $uid == 0 ]]; then uid=1000; gid=1000; fi
    if ! [[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]]; then
        echo "error: NB_UID and NB_GID must be numbers (got '$uid' and '$gid')" >&2
        exit 2
    fi
    chown -R "$uid:$gid" /home/jovyan
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
    if [[ -z ${JUPYTER_TOKEN:-} ]]; then
        JUPYTER_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(24))')
        export JUPYTER_TOKEN
        echo "[keras-workstation] generated token (set JUPYTER_TOKEN to choose one): $JUPYTER_TOKEN"
    fi
    echo "[keras-workstation] JupyterLab: http://localhost:8888/lab?token=$JUPYTER_TOKEN (publish the port with -p 8888:8888)"
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
