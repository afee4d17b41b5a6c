"""MkDocs hooks for the manual (mkdocs.yml): README.md, SECURITY.md and
bench/RESULTS.md (with its chart) become site pages without a second copy,
and links to repository files outside the site are rewritten to text, so
`--strict` checks every link that remains (a link to nothing stays and fails
the build)."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
#: site page -> the repository file it is made from
PAGES = {"index.md": "README.md", "security.md": "SECURITY.md",
         "benchmarks.md": "bench/RESULTS.md"}
ASSETS = {"results.png": "bench/results.png"}
#: repository path -> site path, for links
TARGETS = {**{v: k for k, v in PAGES.items()}, **{v: k for k, v in ASSETS.items()},
           "docs/design.md": "design.md", "docs/behaviour.md": "behaviour.md",
           "docs/effects.md": "effects.md"}
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _rewrite(markdown: str, source: str) -> str:
    """Links in ``source`` (a repository path) to site paths; a link to a
    repository file that is not on the site becomes its text and path; a link
    to nothing is left as it is, for ``mkdocs build --strict`` to refuse."""
    base = Path(source).parent

    def sub(m: re.Match) -> str:
        bang, text, target = m.groups()
        if re.match(r"[a-z]+:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo_path = (base / path).as_posix()
        if ".." in Path(repo_path).parts:
            try:
                repo_path = (ROOT / base / path).resolve().relative_to(ROOT).as_posix()
            except ValueError:  # outside the repository: left for --strict to report
                return m.group(0)
        site = TARGETS.get(repo_path)
        if site is None and repo_path.startswith("docs/"):
            site = repo_path[len("docs/"):]  # a page of docs_dir: mkdocs checks it exists
        if site is None:
            if not (ROOT / repo_path).exists():
                return m.group(0)  # broken: left for mkdocs --strict to report
            return f"{text} (`{repo_path}` in the source tree)" if not bang else text
        return f"{bang}[{text}]({site}{'#' + anchor if anchor else ''})"

    return _LINK.sub(sub, markdown)


def on_files(files, config):
    for page, source in PAGES.items():
        files.append(File.generated(config, page, content=_rewrite(
            (ROOT / source).read_text(encoding="utf-8"), source)))
    for asset, source in ASSETS.items():
        files.append(File.generated(config, asset, abs_src_path=str(ROOT / source)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri in PAGES:
        return markdown  # rewritten in on_files
    return _rewrite(markdown, "docs/" + page.file.src_uri)
