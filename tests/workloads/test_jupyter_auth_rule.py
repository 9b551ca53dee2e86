"""The JupyterLab authentication rule itself (workloads/service/jupyter_auth.py), without a server: which
tokens it lets a server start with. The servers (Ansible's config, the image, `make jupyter`) are started
for real in tests/ansible/test_jupyter_auth.py and tests/image/test_jupyter_auth.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads.service.jupyter_auth import (
    MIN_TOKEN_LENGTH,
    AuthRefused,
    require_credential,
    secret_from_file,
    secret_from_text,
)

NO_HASH = secret_from_text(None, "$JUPYTER_PASSWORD_HASH")
HASH = secret_from_text("argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA", "$JUPYTER_PASSWORD_HASH")
STRONG = "kw-0123456789abcdefghijklmnopqrstuvwxyz"


def refusal(token: str | None, password_hash=NO_HASH) -> str | None:
    try:
        require_credential(secret_from_text(token, "$JUPYTER_TOKEN"), password_hash)
    except AuthRefused as refused:
        return str(refused.code)
    return None


@pytest.mark.parametrize(
    ("token", "words"),
    [("\u200b", "U+200B"), ("\ufeff", "U+FEFF"), ("\x00", "U+0000"), ("x", "1 character(s) long"),
     ("a" * (MIN_TOKEN_LENGTH - 1), f"needs at least {MIN_TOKEN_LENGTH}"),
     (STRONG[:20] + "\u200b" + STRONG[20:], "U+200B"), (STRONG[:20] + " " + STRONG[20:], "U+0020"),
     (STRONG + "\x00", "U+0000")],
    ids=["zero-width-space", "byte-order-mark", "nul", "one-character", "one-short", "hidden-inside",
         "space-inside", "nul-at-the-end"],
)  # fmt: skip
def test_a_weak_token_is_refused_with_one_line(token: str, words: str) -> None:
    message = refusal(token)
    assert message is not None and words in message and "\n" not in message
    assert STRONG[:20] not in message, "the message shows the token"


def test_a_weak_token_is_refused_even_beside_a_password_hash() -> None:
    """The token would open the door whatever else is set."""
    assert refusal("x", HASH) is not None
    assert refusal(None, HASH) is None and refusal("", HASH) is None  # password login only


def test_a_strong_token_opens_and_surrounding_whitespace_is_not_part_of_it() -> None:
    assert refusal("a" * MIN_TOKEN_LENGTH) is None
    assert refusal(f"  {STRONG}\n") is None


def test_a_token_file_of_only_a_zero_width_space_is_refused(tmp_path) -> None:
    path = tmp_path / "jupyter-token"
    path.write_text("\u200b\n")
    with pytest.raises(AuthRefused, match="U\\+200B"):
        require_credential(secret_from_file(path), NO_HASH)


@given(st.text(max_size=80) | st.text(alphabet=st.characters(codec="ascii"), min_size=30, max_size=40))
def test_any_accepted_token_is_long_and_visible(text: str) -> None:
    if refusal(text) is None:
        value = text.strip()
        assert len(value) >= MIN_TOKEN_LENGTH
        assert all(ch.isprintable() and not ch.isspace() for ch in value)
