"""The README is a front door and the docs hold together: a short README, no project tracking, no dead links.

The site itself is built by `make docs` (`mkdocs build --strict`, part of `make test`), which fails on a broken link
or anchor between the pages of docs/. These checks cover what mkdocs does not see: the README, whose links go into
docs/, and links that leave the repository.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

# `grep -rn "issue [0-9]\|\.\./shared" README.md docs/` must find nothing: no issue numbers, no paths outside the repo.
FORBIDDEN = re.compile(r"issue [0-9]|\.\./shared")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def links(path: Path) -> list[str]:
    """Every Markdown link target of a page (images too), outside fenced blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return LINK.findall(text)


def test_readme_is_a_front_door_of_at_most_250_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {MAX_README_LINES})"
    )


def test_docs_name_no_issue_numbers_and_no_paths_outside_the_repository():
    files = [README, *sorted(p for p in DOCS.rglob("*") if p.is_file() and p.suffix in {".md", ".py", ".yml"})]
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in files
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert not hits, "issue numbers or ../shared paths in the docs:\n" + "\n".join(hits)


def test_the_docs_have_pages_and_the_readme_links_into_them():
    assert (DOCS / "index.md").is_file() and (ROOT / "mkdocs.yml").is_file()
    targets = {t.split("#")[0] for t in links(README)}
    assert {"docs/installation.md", "docs/results.md", "docs/cli.md", "docs/architecture.md"} <= targets


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_relative_and_points_at_a_file_that_exists(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            broken.append(f"{target} (leaves the repository: link to a file in it)")
            continue
        path = target.split("#")[0]
        if not path:  # an anchor on the same page; mkdocs --strict checks anchors
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_the_link_check_sees_links_and_skips_code(tmp_path):
    # The checks above pass vacuously if the pattern finds nothing; pin what it reads.
    page = tmp_path / "sample.md"
    page.write_text(
        "See [results](docs/results.md#top) and ![pic](docs/demo.png).\n`[not](a-link)`\n```\n[no](x)\n```\n",
        encoding="utf-8",
    )
    assert links(page) == ["docs/results.md#top", "docs/demo.png"]
