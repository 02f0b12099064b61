"""The manifest loader: YAML files → a validated, cross-checked desired stack.

``load_stack(["stack.yaml"])`` returns a :class:`DesiredStack` or raises a
:class:`LoadError` listing every problem as ``file:line:column: path: message``.
See :mod:`reconciler.load.loader` for the stages and each module for its rules.
"""

from reconciler.load.desired import DesiredStack, LoadedObject
from reconciler.load.inputs import MAX_FILE_BYTES
from reconciler.load.loader import ENV_FILE, load_stack
from reconciler.load.problems import LoadError, Problem, SourceLocation
from reconciler.load.stackname import normalize_stack_name
from reconciler.load.yamltree import MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES

__all__ = [
    "ENV_FILE",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "DesiredStack",
    "LoadError",
    "LoadedObject",
    "Problem",
    "SourceLocation",
    "load_stack",
    "normalize_stack_name",
]
