"""The JupyterLab authentication matrix, one definition for every launch mode the tests start: the config the
Ansible role renders (tests/ansible), the image and `make jupyter`'s script (tests/image).

Every mode must give 403 (or refuse to start) to a request without a token, with an empty, a blank or a wrong
one, and let the right credential in; none may ever log "authentication is disabled".
"""

from __future__ import annotations

import http.cookiejar
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

DISABLED = "authentication is disabled"
REFUSAL = "refusing to start JupyterLab"
# (label, token sent): everything a client might send that is not the credential.
NOT_THE_TOKEN = [("no token", None), ("empty token", ""), ("blank token", "  "),
                 ("wrong token", "kw-wrong-token-0123456789abcdef")]  # fmt: skip
# Reading files, writing a file, starting a kernel: what "root on the machine" needs.
GUARDED = [("GET", "/api/contents"), ("GET", "/api/status"), ("PUT", "/api/contents/kw-pwned.txt"),
           ("POST", "/api/kernels")]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(method: str, url: str, token: str | None = None, body: dict | None = None) -> int:
    """Status of one request; the token goes both ways a client can send it (query and header)."""
    if token is not None:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"token": token})
    data = json.dumps(body).encode() if body is not None else (b"{}" if method in ("PUT", "POST") else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def assert_only_the_token_opens(base: str, token: str | None) -> None:
    """403 for every request that lacks the credential; with `token` (when there is one), reading and writing
    work: the negative control that shows these checks can pass."""
    for label, sent in NOT_THE_TOKEN:
        for method, path in GUARDED:
            status = request(method, base + path, sent)
            assert status == 403, f"{label}: {method} {path} answered {status}, not 403"
    if token:
        assert request("GET", base + "/api/status", token) == 200
        file = {"type": "file", "format": "text", "content": "written with the token"}
        status = request("PUT", base + "/api/contents/kw-auth-check.txt", token, file)
        assert status in (200, 201), f"the token could not write a file: {status}"


def password_login_status(base: str, password: str) -> int:
    """Log in through the form (with its XSRF cookie), then ask /api/status: its status, or the login's."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/login", timeout=15).read()
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    form = urllib.parse.urlencode({"_xsrf": xsrf, "password": password}).encode()
    try:
        opener.open(f"{base}/login?next=/api/status", data=form, timeout=15).read()
        with opener.open(f"{base}/api/status", timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def assert_refused(returncode: int | None, output: str) -> None:
    """The server did not start, and said why in one line; it never ran open."""
    assert returncode not in (None, 0), f"the server did not refuse (exit {returncode}):\n{output[-3000:]}"
    assert REFUSAL in output, output[-3000:]
    assert DISABLED not in output, output[-3000:]
