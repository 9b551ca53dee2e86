"""JupyterLab settings of the image (passed with --config by entrypoint.sh).

Credentials: $JUPYTER_TOKEN_FILE (a mounted file) or $JUPYTER_TOKEN, and optionally a password hash,
$JUPYTER_PASSWORD_HASH_FILE or $JUPYTER_PASSWORD_HASH. The rule that refuses to start without one is
workloads/service/jupyter_auth.py, the same code the Ansible service's config runs.
"""

import os

from workloads.service.jupyter_auth import configure, secret_from_environment

c = get_config()  # noqa: F821 (injected by Jupyter when it loads this file)

configure(
    c,
    token=secret_from_environment("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", "token"),
    password_hash=secret_from_environment(
        "JUPYTER_PASSWORD_HASH", "JUPYTER_PASSWORD_HASH_FILE", "password hash"
    ),
)
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = int(os.environ.get("KW_JUPYTER_PORT", "8888"))
c.ServerApp.open_browser = False
c.ServerApp.root_dir = "/work"
# The image's notebooks, next to the user's files.
c.ContentsManager.allow_hidden = False
c.LabApp.default_url = "/lab"
