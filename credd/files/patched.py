"""The credentials file as pieces of text, patched section by section (issue 9).

A commit of credd's sections used to parse the whole file with configupdater (and check it with
``RawConfigParser``) and rebuild it from the parsed blocks: with 1,000 sections that is ~0.3 s
of CPU per commit, and commits are serial. :class:`SectionText` is the result of one such full
parse kept as plain strings: every section's header, its content up to the last option, and the
blank lines and comments after it, with the owner and expiry credd reads from it. Joined, the
pieces are exactly the text that was parsed.

A commit whose base text is exactly the text credd itself produced last (:meth:`matches`) reuses
that :class:`SectionText`, replaces the content of the sections it writes and appends new ones:
no parse at all. Any other text (a foreign write, the first commit, a retry after a race) is
parsed in full, with every check :func:`credd.files.ini.parse_ini` makes. Patching keeps the file
parseable the same way by both parsers: credd's content lines are ``key = value`` at column 0
(never a continuation of another section's value), one-line values, and a section is appended
only when absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from configupdater import Option, Section

from credd.files.ini import Errors, parse_ini, reassemble, split_section


@dataclass(frozen=True)
class Owned:
    """What credd reads from one section: the index of its content piece, its
    ``credd_managed_by`` (None: not credd's) and its ``credd_expiration`` text."""

    content: int
    owner: str | None
    expiration: str | None


def _value(section: Section, key: str) -> str | None:
    opt = section.get(key)
    if isinstance(opt, Option) and opt.value is not None:
        return str(opt.value)
    return None


class SectionText:
    """A parsed file as pieces: ``"".join(pieces)`` is its exact text."""

    def __init__(self, pieces: list[str], sections: dict[str, Owned], eol: str) -> None:
        self.pieces = pieces
        self.sections = sections
        self.eol = eol

    @classmethod
    def parse(
        cls, text: str, path: Path, errors: Errors, owner_key: str, expiration_key: str
    ) -> SectionText:
        """A full parse (and every check of :func:`~credd.files.ini.parse_ini`)."""
        doc = parse_ini(text, path, errors)
        pieces: list[str] = []
        sections: dict[str, Owned] = {}
        for block in doc.iter_blocks():
            if not isinstance(block, Section):
                pieces.append(reassemble(block))
                continue
            content, trailing = split_section(block)
            pieces.append("".join(block.lines))
            owner = _value(block, owner_key)
            sections[block.name] = Owned(
                len(pieces), None if owner is None else owner.strip(), _value(block, expiration_key)
            )
            pieces.append("".join(str(b) for b in content))
            pieces.append("".join(str(b) for b in trailing))
        eol = "\r\n" if "\r\n" in text else "\n"
        return cls(pieces, sections, eol)

    def text(self) -> str:
        return "".join(self.pieces)

    def matches(self, text: str) -> bool:
        """Whether ``text`` is exactly the text these pieces make."""
        return len(text) == sum(map(len, self.pieces)) and text == self.text()

    def patched(self, bodies: dict[str, tuple[str, Owned]]) -> SectionText:
        """A new :class:`SectionText` with each named section's content replaced (its header
        ended by a line end if it had none), or the section appended after one blank line, as
        :func:`credd.files.ini.append_block` does. ``bodies``: name -> (content, what it holds,
        whose ``content`` index is ignored)."""
        pieces = list(self.pieces)
        sections = dict(self.sections)
        for name, (body, owned) in bodies.items():
            old = sections.get(name)
            if old is None:
                if any(pieces):
                    pieces.append(self.eol)
                pieces.append(f"[{name}]{self.eol}")
                index = len(pieces)
                pieces.extend((body, ""))
            else:
                index = old.content
                head = pieces[index - 1]
                pieces[index - 1] = head if head.endswith("\n") else head + self.eol
                pieces[index] = body
            sections[name] = Owned(index, owned.owner, owned.expiration)
        return SectionText(pieces, sections, self.eol)


class PatchCache:
    """The :class:`SectionText` of the text credd produced last, reused when the file still
    holds exactly that text. Holding it is safe whatever became of the commit: it is a pure
    function of its text, which is compared in full before each use."""

    def __init__(self, parse: Callable[[str], SectionText]) -> None:
        self._parse = parse
        self._last: SectionText | None = None
        self.full_parses = 0  # for tests and the bench: how often the cache did not apply

    def get(self, text: str) -> SectionText:
        last = self._last
        if last is not None and last.matches(text):
            return last
        self.full_parses += 1
        doc = self._parse(text)
        self._last = doc
        return doc

    def keep(self, doc: SectionText) -> None:
        self._last = doc

    def forget(self) -> None:
        self._last = None
