"""``load_stack``: manifests on disk (or stdin) → a validated :class:`DesiredStack`.

The stages, each adding to one list of problems so that a single run reports
every mistake (``LoadError`` is raised once, at the end):

1. the inputs: ``-f`` files, directories, ``-``;
2. the variables: ``environ`` over a ``.env`` file beside the first manifest;
3. per file: YAML → documents with positions (:mod:`.yamltree`, with the limits);
4. per document: interpolation, validation, host files;
5. across documents: names and references (:mod:`.crossref`); the stack name.

Problems of one document are listed in the order of their lines. Nothing here
writes anywhere or touches the host beyond reading files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from reconciler.load import (
    compose,
    crossref,
    desired,
    envfile,
    hostfiles,
    inputs,
    interpolate,
    problems,
    stackname,
    validate,
    yamltree,
)

__all__ = ["ENV_FILE", "load_stack"]

#: The file of interpolation variables, beside the first manifest (Compose's name).
ENV_FILE = ".env"


def load_stack(
    paths: Sequence[str],
    *,
    stack: str | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> desired.DesiredStack:
    """Load, interpolate, validate and cross-check the manifests named by ``paths``.

    ``paths`` are files, directories (their ``*.yaml``/``*.yml`` files, sorted) and
    ``-`` (``stdin``, default ``sys.stdin``); a single string is taken as one path.
    Interpolation variables come from ``environ`` (default ``os.environ``) over the
    ``.env`` file beside the first path. Raises
    :class:`~reconciler.load.problems.LoadError` with every problem found.
    """
    if isinstance(paths, str):
        paths = [paths]
    environ = os.environ if environ is None else environ
    found: list[problems.Problem] = []
    warnings: list[problems.Problem] = []
    sources, errors = inputs.list_inputs(paths)
    found.extend(errors)
    variables, env_file = _variables(paths, environ, found)
    budget = yamltree.Budget()
    entries: list[crossref.Entry] = []
    objects: list[desired.LoadedObject] = []
    declared: list[tuple[str, problems.SourceLocation]] = []
    for source in sources:
        if source.path == inputs.STDIN:
            text, error = inputs.read_stdin(stdin if stdin is not None else sys.stdin)
        else:
            text, error = inputs.read_text(source.path, source.display)
        if error is not None or text is None:
            found.extend([error] if error else [])
            continue
        documents, errors = yamltree.parse_documents(text, source.display, budget)
        found.extend(errors)
        documents = _translate_compose(documents, found, warnings)
        for document in documents:
            group: list[problems.Problem] = []
            entry, obj = _document(document, source, variables, environ, group, warnings)
            entries.append(entry)
            if obj is not None and not group:
                objects.append(obj)
                if obj.manifest.metadata.stack is not None:
                    where = document.positions.value(("metadata", "stack"))
                    declared.append((obj.manifest.metadata.stack, where))
            found.extend(group)
    found.extend(crossref.check_references(entries))
    name, errors = stackname.choose_stack(stack, declared, paths)
    found.extend(errors)
    if found:
        order = {s.display: i for i, s in enumerate(sources)}
        raise problems.LoadError(sorted(found, key=lambda p: _order(p, order)))
    return desired.DesiredStack(
        name=name,
        objects=tuple(objects),
        files=tuple(s.path for s in sources),
        warnings=tuple(warnings),
        env_file=env_file,
    )


def _translate_compose(
    documents: list[yamltree.RawDocument],
    found: list[problems.Problem],
    warnings: list[problems.Problem],
) -> list[yamltree.RawDocument]:
    """Compose documents (top-level ``services``) become pyreconcile documents."""
    result: list[yamltree.RawDocument] = []
    for document in documents:
        if not compose.is_compose(document.data):
            result.append(document)
            continue
        translated, errors, warned = compose.translate(document)
        found.extend(errors)
        warnings.extend(warned)
        result.extend(translated)
    return result


def _order(problem: problems.Problem, order: Mapping[str, int]) -> tuple[int, int, int, int]:
    """Problems without a place first, then in the order of the inputs and their lines;
    problems in other files (env files) after them."""
    where = problem.location
    if where is None:
        return (0, 0, 0, 0)
    if where.file in order:
        return (1, order[where.file], where.line, where.column)
    return (2, 0, 0, 0)


def _variables(
    paths: Sequence[str], environ: Mapping[str, str], found: list[problems.Problem]
) -> tuple[dict[str, str], str | None]:
    """``environ`` over the ``.env`` file beside the first manifest, and that file's path."""
    variables = dict(environ)
    if not paths:
        return variables, None
    first = paths[0]
    if first == inputs.STDIN:
        directory, shown_dir = os.getcwd(), ""
    elif os.path.isdir(first):
        directory, shown_dir = os.path.abspath(first), first
    else:
        directory, shown_dir = os.path.dirname(os.path.abspath(first)), os.path.dirname(first)
    path = os.path.join(directory, ENV_FILE)
    if not os.path.exists(path):
        return variables, None
    display = os.path.join(shown_dir, ENV_FILE)
    text, error = inputs.read_text(path, display)
    if error is not None or text is None:
        found.extend([error] if error else [])
        return variables, path
    values, errors = envfile.parse_env(text, display)
    found.extend(errors)
    return {**values, **environ}, path


def _document(
    document: yamltree.RawDocument,
    source: inputs.Input,
    variables: Mapping[str, str],
    environ: Mapping[str, str],
    found: list[problems.Problem],
    warnings: list[problems.Problem],
) -> tuple[crossref.Entry, desired.LoadedObject | None]:
    result = interpolate.interpolate_tree(document.data, variables, document.positions)
    found.extend(result.errors)
    warnings.extend(result.warnings)
    manifest, errors = validate.validate_document(
        result.data, document.positions, document.start, result.failed
    )
    found.extend(errors)
    entry = crossref.Entry.of(result.data, document.positions, manifest)
    if manifest is None:
        return entry, None
    resolved = hostfiles.resolve_files(manifest, source, document.positions, environ)
    found.extend(resolved.problems)
    obj = desired.LoadedObject(
        manifest=resolved.manifest,
        location=document.start,
        base_dir=source.base_dir,
        env_from=resolved.env_from,
        file_digests=resolved.file_digests,
    )
    return entry, obj
