"""The registry client: the distribution API on ``requests``, verified pulls
and pushes, authentication and credentials (see each module's docstring)."""

from runtime.engine.registry.failures import AccessDenied, AuthenticationRequired
from runtime.engine.registry.options import RegistryOptions
from runtime.engine.registry.registries import Registries, registry_domain

__all__ = [
    "AccessDenied",
    "AuthenticationRequired",
    "Registries",
    "RegistryOptions",
    "registry_domain",
]
