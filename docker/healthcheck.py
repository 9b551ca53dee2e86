"""HEALTHCHECK: JupyterLab's /api answers with its version (that endpoint needs no token by design)."""

import json
import os
import sys
import urllib.request

PORT = os.environ.get("KW_JUPYTER_PORT", "8888")

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api", timeout=4) as response:
        version = json.load(response)["version"]
except Exception as exc:  # any failure means unhealthy; say which
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"healthy: jupyter_server {version}")
