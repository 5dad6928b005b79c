"""Duplicate detection rules: pure functions over core.records.FileRecord.

exact.py (size planning, sha256 groups), perceptual.py (pHash clusters without
chaining), keeper.py (which copy to keep and why), groups.py (what the service stores).
"""

from core.dedup.exact import collapse_hard_links, exact_candidates, exact_groups, exact_index
from core.dedup.groups import (
    EXACT,
    PERCEPTUAL,
    DupGroup,
    DupMember,
    find_duplicates,
    perceptual_key,
    still_dismissed,
)
from core.dedup.keeper import DEFAULT_FORMAT_PREFERENCE, choose_keeper, format_of
from core.dedup.perceptual import (
    COLOUR_TOLERANCE,
    Cluster,
    colour_distance,
    different_shots,
    hamming,
    informative,
    perceptual_clusters,
    similarity_score,
)

__all__ = [
    "EXACT",
    "PERCEPTUAL",
    "DEFAULT_FORMAT_PREFERENCE",
    "COLOUR_TOLERANCE",
    "Cluster",
    "colour_distance",
    "different_shots",
    "DupGroup",
    "DupMember",
    "choose_keeper",
    "collapse_hard_links",
    "exact_candidates",
    "exact_groups",
    "exact_index",
    "find_duplicates",
    "format_of",
    "hamming",
    "informative",
    "perceptual_clusters",
    "perceptual_key",
    "similarity_score",
    "still_dismissed",
]
