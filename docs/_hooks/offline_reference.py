"""MkDocs hooks that keep `mkdocs build --strict` offline and independent of how far the packages have come.

Two jobs:

1. **Public submodules in the API reference.** A reference page whose front matter says
   `submodules_of: durable_temporal` gets one `::: durable_temporal.<name>` section per public submodule found on
   disk (`testing.py`, ...). A page therefore never names a module that does not exist yet, and a new public module
   shows up without editing the docs.

2. **Cross-references to other projects, without fetching inventories.** Docstrings link to pydantic-ai,
   pydantic, Temporal, DBOS and Prefect objects (`[RunContext][pydantic_ai.tools.RunContext]`). Loading those
   projects' `objects.inv` would need the network, so each such identifier is mapped here to the page of the
   project's public docs that documents it. References to our own packages that do not resolve (a name that a
   package does not export yet) link to that package's reference page and are reported at INFO level
   (`mkdocs build -v` shows them) instead of failing the strict build; any other unresolved reference still
   fails it.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any, cast

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

log = logging.getLogger('mkdocs.hooks.offline_reference')

_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES_DIR = _ROOT / 'packages'

OUR_PACKAGES: dict[str, str] = {
    'durable_kernel': 'reference/kernel/',
    'durable_temporal': 'reference/temporal/',
    'durable_dbos': 'reference/dbos/',
    'durable_prefect': 'reference/prefect/',
}
"""Our importable packages and the site URL (relative to the site root) of their reference pages."""

_AUTOREF_RE = re.compile(r'<autoref (?P<attrs>[^>]*?)>')
_IDENTIFIER_RE = re.compile(r'identifier="(?P<identifier>[^"]+)"')


def _package_dir(package: str) -> Path | None:
    for candidate in _PACKAGES_DIR.glob(f'*/src/{package}'):
        if candidate.is_dir():
            return candidate
    return None


def public_submodules(package: str) -> list[str]:
    """The public submodules of one of our packages, as found on disk (`testing`, ...), sorted."""
    package_dir = _package_dir(package)
    if package_dir is None:
        return []
    names: list[str] = []
    for entry in package_dir.iterdir():
        if entry.name.startswith('_'):
            continue
        if entry.suffix == '.py':
            names.append(entry.stem)
        elif entry.is_dir() and (entry / '__init__.py').is_file():
            names.append(entry.name)
    return sorted(names)


def on_page_markdown(markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Append a section per public submodule to reference pages that ask for it in their front matter."""
    package = page.meta.get('submodules_of')
    if not package:
        return markdown
    sections = [markdown.rstrip(), '']
    for name in public_submodules(package):
        sections += [
            f'## `{package}.{name}`',
            '',
            f'::: {package}.{name}',
            '    options:',
            '      show_root_heading: false',
            '      heading_level: 3',
            '',
        ]
    return '\n'.join(sections)


def _split_module(identifier: str) -> tuple[str, str, Any]:
    """Split `a.b.C.d` into the longest importable module (`a.b`), the rest (`C.d`) and the object (or None)."""
    parts = identifier.split('.')
    for cut in range(len(parts), 0, -1):
        module_name = '.'.join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except Exception:  # any import failure means "not a module": try a shorter prefix
            continue
        obj: Any = module
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, None)
            if obj is None:
                break
        return module_name, '.'.join(parts[cut:]), obj
    return '', identifier, None


_PYDANTIC_AI_PAGES: dict[str, str] = {'pydantic_ai.models': 'models/base'}


def _pydantic_ai_url(identifier: str) -> str:
    module_name, rest, obj = _split_module(identifier)
    if module_name == 'pydantic_ai' and rest and obj is not None:
        # A top-level re-export (`pydantic_ai.Agent`): the docs document it under its defining public module.
        defining = getattr(obj, '__module__', '') or ''
        if defining.startswith('pydantic_ai.') and not any(p.startswith('_') for p in defining.split('.')):
            module_name = defining
            identifier = f'{defining}.{rest}'
    if not module_name or module_name == 'pydantic_ai' or any(p.startswith('_') for p in module_name.split('.')):
        return 'https://ai.pydantic.dev/api/agent/'
    page = _PYDANTIC_AI_PAGES.get(module_name, module_name.removeprefix('pydantic_ai.').replace('.', '/'))
    return f'https://ai.pydantic.dev/api/{page}/#{identifier}'


def _temporalio_url(identifier: str) -> str:
    # python.temporal.io (pydoctor): one page per module and per class, other objects as anchors on their parent.
    _, rest, obj = _split_module(identifier)
    if not rest or isinstance(obj, type):
        return f'https://python.temporal.io/{identifier}.html'
    parent, _, name = identifier.rpartition('.')
    return f'https://python.temporal.io/{parent}.html#{name}'


def external_url(identifier: str) -> str | None:
    """The public docs URL for an identifier of another project, or None when it is not one we know."""
    root = identifier.split('.', 1)[0]
    if root == 'pydantic_ai':
        return _pydantic_ai_url(identifier)
    if root == 'temporalio':
        return _temporalio_url(identifier)
    if root == 'pydantic':
        return 'https://docs.pydantic.dev/latest/api/base_model/'
    if root == 'dbos':
        return 'https://docs.dbos.dev/python/reference/'
    if root == 'prefect':
        return 'https://docs.prefect.io/v3/api-ref/python/'
    return None


def on_env(env: Any, /, *, config: MkDocsConfig, files: Files) -> Any:
    """Register URLs for cross-references to other projects before autorefs resolves references (it runs later)."""
    autorefs = cast(Any, config.plugins).get('autorefs')
    if autorefs is None:
        return env
    identifiers: set[str] = set()
    for file in files:
        content = file.page.content if file.page is not None else None
        if not content:
            continue
        for match in _AUTOREF_RE.finditer(content):
            found = _IDENTIFIER_RE.search(match.group('attrs'))
            if found and 'optional' not in match.group('attrs').split():
                identifiers.add(found.group('identifier'))
    for identifier in sorted(identifiers):
        try:
            # With mkdocstrings' fallback, as autorefs itself will try: re-exports resolve through it.
            autorefs.get_item_url(identifier, fallback=autorefs.get_fallback_anchor)
            continue  # documented on our own pages
        except KeyError:
            pass
        url = external_url(identifier)
        root = identifier.split('.', 1)[0]
        if url is None and root in OUR_PACKAGES:
            log.info('unresolved reference %r: linking to the %s reference page', identifier, root)
            # Site-relative (no leading slash): autorefs makes it relative to each linking page.
            url = f'{OUR_PACKAGES[root]}#{root}'
        if url is not None:
            autorefs.register_url(identifier, url)
    return env
