"""MkDocs hooks (mkdocs.yml `hooks:`): pages generated from the code, and a nav that
takes new pages in.

- A page line `<!-- miva:generated NAME -->` is replaced by `miva.cli.reference.PAGES[NAME]()`
  (configuration, metrics, commands); `<!-- miva:include PATH -->` by the file at PATH
  (relative to the repository root), e.g. bench/RESULTS.md.
- A page under docs/ that the nav does not list is added under "More guides", so a new
  topic page shows up before someone places it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_GENERATED = re.compile(r"^<!-- miva:generated (\w+) -->$", re.M)
_INCLUDE = re.compile(r"^<!-- miva:include (\S+) -->$", re.M)


def _listed(nav) -> set[str]:
    found: set[str] = set()
    items = nav if isinstance(nav, list) else [nav]
    for item in items:
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            for value in item.values():
                found |= _listed(value)
    return found


def on_config(config, **kwargs):
    docs = Path(config["docs_dir"])
    listed = _listed(config["nav"] or [])
    extra = sorted(
        p.relative_to(docs).as_posix()
        for p in docs.rglob("*.md")
        if p.relative_to(docs).as_posix() not in listed
    )
    if extra:
        config["nav"].append({"More guides": extra})
    return config


def on_page_markdown(markdown, page, config, files, **kwargs):
    from miva.cli.reference import PAGES

    def generated(match: re.Match) -> str:
        name = match.group(1)
        if name not in PAGES:
            raise KeyError(
                f"{page.file.src_path}: no generated page {name!r}; known: {sorted(PAGES)}"
            )
        return PAGES[name]()

    def include(match: re.Match) -> str:
        return (ROOT / match.group(1)).read_text()

    return _INCLUDE.sub(include, _GENERATED.sub(generated, markdown))
