"""JupyterLab settings of the image (passed with --config by entrypoint.sh)."""

import os
import sys

c = get_config()  # noqa: F821 (injected by Jupyter when it loads this file)

token = os.environ.get("JUPYTER_TOKEN", "")
if not token:
    # The entrypoint always sets one; refuse to run open if started some other way.
    sys.exit("error: JUPYTER_TOKEN is empty: the server never runs without a token")

c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = int(os.environ.get("KW_JUPYTER_PORT", "8888"))
c.ServerApp.open_browser = False
c.ServerApp.root_dir = "/work"
# Every endpoint without an explicit rule needs a login (only /api's version and the login page are open).
c.ServerApp.allow_unauthenticated_access = False
c.IdentityProvider.token = token
# Optional password, as a hash from `python -c "from jupyter_server.auth import passwd; print(passwd())"`.
if os.environ.get("JUPYTER_PASSWORD_HASH"):
    c.PasswordIdentityProvider.hashed_password = os.environ["JUPYTER_PASSWORD_HASH"]
# The image's notebooks, next to the user's files.
c.ContentsManager.allow_hidden = False
c.LabApp.default_url = "/lab"
