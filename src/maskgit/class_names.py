"""Class labels given by name or by index: the lookup of a class name (its whole name, case-insensitive, or one
of its comma-separated synonyms, as the ImageNet names have them) and the rule that a string is a name first
and an index only when no class has that name.
"""

from __future__ import annotations

from typing import Sequence


def classes_named(class_names: Sequence[str], name: str) -> list[int]:
    """Indices of the classes whose whole name is `name` (case-insensitive), else of those with it as a synonym."""
    key = name.strip().lower()
    found = [i for i, n in enumerate(class_names) if n.lower() == key]
    return found or [i for i, n in enumerate(class_names) if key in (s.strip().lower() for s in n.split(","))]


def class_index_by_name(class_names: Sequence[str], name: str) -> int:
    """Index of the class called `name` (case-insensitive): its whole name or one of its comma-separated
    synonyms ("golden retriever", "tench" for "tench, Tinca tinca"); an ambiguous synonym is refused."""
    key = name.strip().lower()
    found = classes_named(class_names, name)
    if len(found) == 1:
        return found[0]
    if found:
        choices = "; ".join(f"{i} = {class_names[i]!r}" for i in found)
        raise ValueError(f"class name {name!r} is ambiguous ({choices}): pass the class index")
    if len(class_names) <= 20:
        raise ValueError(f"unknown class name {name!r}; known names: {list(class_names) or 'none'}")
    import difflib

    close = difflib.get_close_matches(key, [n.lower() for n in class_names], n=5, cutoff=0.5)
    raise ValueError(f"unknown class name {name!r} among {len(class_names)} classes"
                     + (f"; close: {close}" if close else "; pass a class index"))


def class_index(class_names: Sequence[str], label: int | str) -> int:
    """One label -> its class index: a string is a class name first (so "1999" is the class of that name) and
    an index only when no class has that name; integers are indices (range-checked by the caller)."""
    if isinstance(label, str) and (classes_named(class_names, label) or not label.strip().lstrip("-").isdigit()):
        return class_index_by_name(class_names, label)  # names first, also names that are numbers
    if isinstance(label, bool) or not isinstance(label, (int, str)) and not hasattr(label, "__index__"):
        raise ValueError(f"labels must be class indices or names, got {label!r}")
    return int(label)
