"""Jinja filter: add components (contrib, non-free, ...) to the Debian archive entries of an apt source file.

Both formats are handled: deb822 (/etc/apt/sources.list.d/debian.sources, the default of Debian container
images and of Debian 13) and one-line (/etc/apt/sources.list, what the Debian 12 installer writes).
Entries are edited in place rather than duplicated in a file of our own, because apt refuses the same URI
and suite with two different Signed-By values ("Conflicting values set for option Signed-By").
"""

from __future__ import annotations

import re

# The Debian archive and its security archive: any path on a debian.org host, or a mirror (or caching proxy)
# serving it as /debian[-security]. Not e.g. https://download.docker.com/linux/debian, a third-party archive.
DEBIAN_URI = re.compile(
    r"^[a-z0-9+]+://(?:[^/]*debian\.org(?::\d+)?/.*|[^/]+(?:/[^/]*debian\.org)?/debian(?:-security)?/?)$",
    re.I,
)
ONE_LINE = re.compile(
    r"^(?P<head>\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+\S+)(?P<components>(?:\s+\S+)*)\s*$"
)


def _union(present: list[str], wanted: list[str]) -> list[str]:
    return present + [c for c in wanted if c not in present]


def _deb822(text: str, wanted: list[str]) -> str:
    stanzas = re.split(r"(\n[ \t]*\n)", text)  # keep the separators
    out = []
    for stanza in stanzas:
        uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M | re.I)
        if uris and any(DEBIAN_URI.match(u) for u in uris.group(1).split()):
            stanza = re.sub(
                r"^(Components:)[ \t]*(.*)$",
                lambda m: f"{m.group(1)} {' '.join(_union(m.group(2).split(), wanted))}",
                stanza,
                flags=re.M | re.I,
            )
        out.append(stanza)
    return "".join(out)


def _one_line(text: str, wanted: list[str]) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        match = ONE_LINE.match(body)
        if match and DEBIAN_URI.match(match.group("uri")):
            components = _union(match.group("components").split(), wanted)
            body = f"{match.group('head')} {' '.join(components)}"
            line = body + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    return "".join(lines)


def apt_debian_components(text: str, components: list[str], deb822: bool = True) -> str:
    """The source file `text` with `components` added to every Debian archive entry (others untouched)."""
    return _deb822(text, list(components)) if deb822 else _one_line(text, list(components))


class FilterModule:
    def filters(self) -> dict:
        return {"apt_debian_components": apt_debian_components}
