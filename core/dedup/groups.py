"""Duplicate groups as the dedup service stores them: exact and perceptual, with a
keeper suggestion, per-member similarity and a deterministic key.

Keys (``DupGroup.key``, at most 64 characters, the ``group_key`` column):

* exact: the sha256 itself. New copies joining or copies disappearing keep the key.
* perceptual: ``"p:"`` + BLAKE2b-128 of the sorted member identities, where a member's
  identity is ``"sha256:<hex>"`` when it stands for an exact group (so the key does not
  move when another copy becomes the representative) and its path key otherwise.

Dismissals (``still_dismissed``): a dismissal records the identities of the members
the user judged. A regenerated group stays dismissed when all of its identities were
in one dismissed set (members deleted, moved away, or below the threshold now do not
resurrect it). A group with a member the user never saw - a new file joining - is a
new question and is shown again. The key alone cannot carry this for perceptual groups
because any membership change changes it; the identity set can.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from core.dedup.exact import collapse_hard_links, exact_groups, exact_index, hard_link_aliases
from core.dedup.keeper import DEFAULT_FORMAT_PREFERENCE, choose_keeper, file_group_rank
from core.dedup.perceptual import (
    COLOUR_TOLERANCE,
    SameGroup,
    perceptual_clusters,
    similarity_score,
)
from core.paths import path_key
from core.records import FileRecord

EXACT = "exact"
PERCEPTUAL = "perceptual"


@dataclass(frozen=True, slots=True)
class DupMember:
    file_id: int
    path: str
    size: int
    sha256: str | None
    phash: str | None
    similarity_score: float  # vs the keeper: 1 - d/64 (1.0 for exact groups and the keeper)
    exact_key: str | None = None  # perceptual member standing for this exact group


@dataclass(frozen=True, slots=True)
class DupGroup:
    type: str  # "exact" | "perceptual"
    key: str
    members: tuple[DupMember, ...]  # sorted by (path, id)
    similarity_score: float  # least similar pair (1.0 for exact)
    keeper_id: int
    keeper_rule: str
    identities: frozenset[str]

    @property
    def reclaimable_bytes(self) -> int:
        return sum(m.size for m in self.members if m.file_id != self.keeper_id)


def member_identity(f: FileRecord, exact_key: str | None = None) -> str:
    return f"sha256:{exact_key}" if exact_key else path_key(f.path)


def perceptual_key(identities: Iterable[str]) -> str:
    digest = hashlib.blake2b("\n".join(sorted(identities)).encode(), digest_size=16)
    return "p:" + digest.hexdigest()


def _names(m: DupMember, content: bool) -> set[str]:
    return member_names(m.path, m.file_id, (m.exact_key, m.sha256) if content else ())


def member_names(path: str, file_id: int, shas: Iterable[str | None] = ()) -> set[str]:
    """Every identity a member may have had when the user judged it: its path, its
    catalog row (``"fid:<id>"``: the same file moved or renamed), and for a look-alike
    group's member its content while byte copies of it made an exact group
    (``"sha256:<hex>"``)."""
    names = {path_key(path), f"fid:{file_id}"}
    names.update(f"sha256:{sha.lower()}" for sha in shas if sha)
    return names


def still_dismissed(group: DupGroup, dismissed: Iterable[frozenset[str] | set[str]]) -> bool:
    """True when every member of ``group`` was in one dismissed group (see module doc).

    A member of a look-alike group is known by its content as well as its path: a picture
    judged while it had byte copies is the same picture once the copies are down to one
    (or the reverse). Not a member of an exact group: a decision on look-alikes that held
    a byte copy (one member standing for all) never judged those copies against each
    other, and must not dismiss or resolve their own group. Any member is also known by
    its catalog row, which survives a move or a rename."""
    names: list[set[str]] | None = None  # computed once per group, only when needed
    for d in dismissed:
        if names is None:
            names = [_names(m, content=group.type != "exact") for m in group.members]
        if covers(d, group.identities, names):
            return True
    return False


def covers(decision: Set[str], identities: Set[str], names: Iterable[Set[str]]) -> bool:
    """Whether a decision's recorded identities cover a group: all of its identities, or
    one name of each member (``member_names``)."""
    return identities <= decision or all(n & decision for n in names)


def find_duplicates(
    files: Iterable[FileRecord],
    *,
    threshold: int = 8,
    same_group: SameGroup = None,
    format_preference: Sequence[str] = DEFAULT_FORMAT_PREFERENCE,
    preferred_folders: Iterable[str | os.PathLike[str]] = (),
    colour_of: Mapping[int, str] | None = None,
    colour_tolerance: float = COLOUR_TOLERANCE,
    file_groups: Mapping[int, Sequence[str]] | None = None,
) -> list[DupGroup]:
    """Exact groups (sorted by key) then perceptual groups (sorted by first path).
    ``colour_of`` (file id -> colour signature) enables the colour check. ``file_groups``
    (file id -> kinds of the members of its file group) feeds the keeper's "file_group"
    rule."""
    files = list(files)
    aliases = hard_link_aliases(files)
    files = collapse_hard_links(files)
    folders = [os.fspath(p) for p in preferred_folders]
    kinds = _through_hard_links(file_groups or {}, aliases)
    out: list[DupGroup] = []
    exact = exact_groups(files)
    kept: set[int] = set()
    for g in exact:
        keeper, rule = choose_keeper(g, format_preference, folders, kinds)
        kept.add(keeper)
        sha = (g[0].sha256 or "").lower()
        members = tuple(DupMember(f.id, f.path, f.size, f.sha256, f.phash, 1.0) for f in g)
        out.append(
            DupGroup(EXACT, sha, members, 1.0, keeper, rule, frozenset(path_key(f.path) for f in g))
        )
    ex_of: Mapping[int, str] = exact_index(exact)

    def stand_in(copies: Sequence[FileRecord]) -> int:
        """The copy a look-alike group shows for byte copies: the one their exact group
        keeps, so that no suggestion trashes what another keeps (the keeper's rules
        again when that one has no pHash to be a look-alike with)."""
        for f in copies:
            if f.id in kept:
                return f.id
        return choose_keeper(copies, format_preference, folders, kinds)[0]

    for c in perceptual_clusters(
        files, threshold, same_group, ex_of, colour_of, colour_tolerance, aliases, stand_in
    ):
        keeper, rule = choose_keeper(c.members, format_preference, folders, kinds)
        k = [m.id for m in c.members].index(keeper)
        members = tuple(
            DupMember(
                m.id, m.path, m.size, m.sha256, m.phash, similarity_score(c.distances[k][i]), x
            )
            for i, (m, x) in enumerate(zip(c.members, c.exact_of, strict=True))
        )
        ids = frozenset(member_identity(m, x) for m, x in zip(c.members, c.exact_of, strict=True))
        out.append(
            DupGroup(
                PERCEPTUAL, perceptual_key(ids), members, c.similarity_score, keeper, rule, ids
            )
        )
    return out


def _through_hard_links(
    file_groups: Mapping[int, Sequence[str]], aliases: Mapping[int, tuple[int, ...]]
) -> Mapping[int, Sequence[str]]:
    """A hard link is one file under several names: the name kept for it belongs to the
    best-ranked file group any of its names belongs to."""
    if not aliases or not file_groups:
        return file_groups
    out = dict(file_groups)
    for kept, ids in aliases.items():
        found = [file_groups[i] for i in ids if i in file_groups]
        if found:
            out[kept] = min(found, key=file_group_rank)
    return out
