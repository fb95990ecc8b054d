"""Stamp a package with the address it is released from, before `uv build`: project URLs and absolute README links.

The packages' metadata cannot name the project's public address before there is one, and a README read on PyPI
cannot follow the relative links (`../../docs/temporal.md`) that work in the repository. The release workflow knows
both the repository it runs in and the tag it builds, so it calls this first:

    python scripts/release_metadata.py --package durable-temporal
        --repository-url https://github.com/OWNER/REPO --ref durable-temporal/v0.3.0   (one line)

It adds `[project.urls]` (Source, Documentation, Changelog, Issues) to `packages/<package>/pyproject.toml` and turns
the README's repository-relative links into links to the same files at `--ref`. Both edits are made to the
checkout the release builds from, never committed; running it twice changes nothing more.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A markdown link target that is a relative path: not a URL, not an anchor, not absolute.
_RELATIVE_LINK = re.compile(r'\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)', re.IGNORECASE)


def project_urls(package: str, repository_url: str, ref: str) -> dict[str, str]:
    """The `[project.urls]` of `package` released from `repository_url` at `ref`."""
    base = repository_url.rstrip('/')
    return {
        'Source': f'{base}/tree/{ref}/packages/{package}',
        'Documentation': f'{base}/tree/{ref}/docs',
        'Changelog': f'{base}/blob/{ref}/packages/{package}/CHANGELOG.md',
        'Issues': f'{base}/issues',
    }


def stamp_pyproject(text: str, urls: dict[str, str]) -> str:
    """`text` (a pyproject.toml) with `[project.urls]` set to `urls`, placed right after the `[project]` table."""
    if re.search(r'^\[project\.urls\]', text, re.MULTILINE):
        return text  # already stamped (or written by hand): keep it
    table = '[project.urls]\n' + ''.join(f'{name} = "{url}"\n' for name, url in urls.items())
    # The `[project]` table ends where the next table header begins.
    match = re.search(r'^\[project\]\n(?:(?!^\[).*\n?)*', text, re.MULTILINE)
    if match is None:
        raise SystemExit('pyproject.toml has no [project] table')
    head = text[: match.end()].rstrip('\n') + '\n\n'
    return head + table + '\n' + text[match.end() :].lstrip('\n')


def absolute_links(readme: str, package: str, repository_url: str, ref: str) -> str:
    """`readme` with every repository-relative link resolved against the package's folder at `ref`."""
    base = repository_url.rstrip('/')

    def resolve(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join('packages', package, match.group(1)))
        if target.startswith('..'):
            raise SystemExit(f'README link {match.group(1)!r} points outside the repository')
        return f']({base}/blob/{ref}/{target})'

    return _RELATIVE_LINK.sub(resolve, readme)


def main(argv: list[str] | None = None) -> int:
    """Stamp one package in place; print what changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument('--package', required=True, help='the package folder under packages/, e.g. durable-temporal')
    parser.add_argument('--repository-url', required=True, help='e.g. https://github.com/OWNER/REPO')
    parser.add_argument('--ref', required=True, help='the tag (or commit) the release is built from')
    parser.add_argument('--root', type=Path, default=ROOT, help='the repository checkout (default: this one)')
    args = parser.parse_args(argv)

    folder: Path = args.root / 'packages' / args.package
    pyproject, readme = folder / 'pyproject.toml', folder / 'README.md'
    if not pyproject.is_file():
        parser.error(f'{pyproject} does not exist: --package names a folder under packages/')
    urls = project_urls(args.package, args.repository_url, args.ref)
    pyproject.write_text(stamp_pyproject(pyproject.read_text(encoding='utf-8'), urls), encoding='utf-8')
    readme.write_text(
        absolute_links(readme.read_text(encoding='utf-8'), args.package, args.repository_url, args.ref),
        encoding='utf-8',
    )
    for name, url in urls.items():
        print(f'{args.package}: {name} = {url}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
