"""The one authentication rule of every JupyterLab this project starts: the image's and the Ansible service's.

JupyterLab starts only with a credential: a token long enough to be a secret (MIN_TOKEN_LENGTH characters,
every one visible), or a Jupyter password hash. A missing, empty or whitespace token with no password hash
stops the server before it listens; it never becomes Jupyter's "All authentication is disabled". A token that
is given but weak (too short, or holding an invisible character such as U+200B, U+FEFF or NUL, which
`str.strip()` keeps and a reader of the file does not see) stops it too, whether or not a password hash is
set: it would open the door all the same. The rule is checked twice: when the config file is read, and
again on the identity provider the server really builds (after the command line, which overrides config
files), so `--IdentityProvider.token=` cannot open the server either.

The image's config imports this module; the Ansible role pastes this file into the config it renders, so
both run the same code. The standard library only at import time (Jupyter is imported when the guard is
built, inside the server); no `from __future__` import, which could not follow the rendered config's header.
"""

import os
import re
from dataclasses import dataclass

# What jupyter_server.auth.passwd() writes (argon2), or its older "algorithm:salt:digest" form.
_PASSWORD_HASH = re.compile(r"^(argon2:\$argon2(id|i|d)\$\S+|[a-z0-9]+:[0-9a-f]+:[0-9a-f]+)$")
_MAX_SECRET_BYTES = 4096  # a token or hash file is a line; anything bigger is the wrong file
# The shortest token accepted: 32 letters and digits are about 190 bits. The one source of this number: the
# Ansible role reads this line (jupyter_token_min_length), and refuses a jupyter_token_length below it.
MIN_TOKEN_LENGTH = 32


NEW_TOKEN = "a token: python3 -c 'import secrets; print(secrets.token_hex(24))'"


class AuthRefused(SystemExit):
    """The server must not start. A SystemExit: Jupyter logs other errors of a config file, then starts."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"keras-workstation: refusing to start JupyterLab: {reason}")


@dataclass(frozen=True)
class Secret:
    """A token or password hash as given: its value without surrounding whitespace, and where it came from."""

    value: str
    origin: str  # "the token file /home/ana/.config/keras-workstation/jupyter-token", "$JUPYTER_TOKEN"
    state: str  # "set", "missing", "empty" or "blank" (whitespace only)

    @property
    def given(self) -> bool:
        return self.state == "set"

    def problem(self) -> str:
        return {"missing": "does not exist" if "file" in self.origin else "is not set"}.get(
            self.state, f"is {self.state}" + (" (whitespace only)" if self.state == "blank" else "")
        )


def secret_from_text(text: str | None, origin: str) -> Secret:
    if text is None:
        return Secret("", origin, "missing")
    if not text.strip():
        return Secret("", origin, "empty" if text == "" else "blank")
    return Secret(text.strip(), origin, "set")


def secret_from_file(path: str | os.PathLike, what: str = "token") -> Secret:
    """A secret kept in a file (the token file of the service, a file mounted into the container)."""
    origin = f"the {what} file {os.fspath(path)}"
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        return secret_from_text(None, origin)
    except OSError as exc:
        raise AuthRefused(f"cannot read {origin} ({exc.strerror or exc})") from None
    if len(raw) > _MAX_SECRET_BYTES:
        raise AuthRefused(f"{origin} is longer than {_MAX_SECRET_BYTES} bytes: not a {what} file")
    try:
        return secret_from_text(raw.decode("utf-8"), origin)
    except UnicodeDecodeError:
        raise AuthRefused(f"{origin} is not text") from None


def secret_from_environment(name: str, file_name: str, what: str) -> Secret:
    """`$<file_name>` (a path) wins over `$<name>` (the value); both are removed from the environment, so
    the kernels the server starts do not inherit them."""
    path, value = os.environ.pop(file_name, None), os.environ.pop(name, None)
    if path:
        return secret_from_file(path, what)
    return secret_from_text(value, f"${name}")


def token_weakness(value: str) -> str | None:
    """Why a given token (surrounding whitespace stripped) is no secret, or None; never shows the token."""
    hidden = next((ch for ch in value if not ch.isprintable() or ch.isspace()), None)
    if hidden is not None:
        return f"holds an invisible or control character (U+{ord(hidden):04X})"
    if len(value) < MIN_TOKEN_LENGTH:
        return f"is {len(value)} character(s) long: a token needs at least {MIN_TOKEN_LENGTH}"
    return None


def require_credential(token: Secret, password_hash: Secret) -> None:
    """The rule: a token of at least MIN_TOKEN_LENGTH visible characters, or a well-formed password hash
    (with no token, or a strong one); AuthRefused otherwise."""
    if token.given and (weakness := token_weakness(token.value)):
        raise AuthRefused(f"{token.origin} {weakness} ({NEW_TOKEN})")
    if password_hash.given and not _PASSWORD_HASH.match(password_hash.value):
        raise AuthRefused(
            f"{password_hash.origin} is not a Jupyter password hash (make one with: python -c "
            "'from jupyter_server.auth import passwd; print(passwd())')"
        )
    if not token.given and not password_hash.given:
        raise AuthRefused(
            f"no credential: {token.origin} {token.problem()}, and no password hash is set ({NEW_TOKEN})"
        )


def configure(c, token: Secret, password_hash: Secret) -> None:
    """Apply the rule to a Jupyter config object `c` (from get_config()): refuse, or set the credentials."""
    require_credential(token, password_hash)
    c.IdentityProvider.token = token.value  # "" only when a password hash is set: password login only
    c.PasswordIdentityProvider.hashed_password = password_hash.value
    # Every endpoint without an explicit rule needs a login (only /api's version and the login page are open).
    c.ServerApp.allow_unauthenticated_access = False
    c.ServerApp.identity_provider_class = guarded_identity_provider()


def guarded_identity_provider() -> type:
    """Jupyter's token/password identity provider, refusing to run without a credential whatever set it."""
    from jupyter_server.auth.identity import PasswordIdentityProvider

    class GuardedIdentityProvider(PasswordIdentityProvider):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._require()

        def validate_security(self, app, ssl_options=None) -> None:
            self._require()  # the last look before the server listens; Jupyter's own warning follows it
            super().validate_security(app, ssl_options)

        def _require(self) -> None:
            require_credential(
                secret_from_text(self.token or "", "the token the server was given"),
                secret_from_text(self.hashed_password or "", "the password hash the server was given"),
            )

    return GuardedIdentityProvider
