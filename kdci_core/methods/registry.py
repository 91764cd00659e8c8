"""The method registry: ``@METHODS.register("name")`` on a DFKDMethod subclass sets its ``name``."""

from ..common.registry import Registry

METHODS = Registry("method", name_attr="name")
