"""The registry's errors, one class per failure a reader of the registry may meet."""


class ModelRegistryError(Exception):
    """Base class of the registry's errors."""


class InvalidModelVersionError(ModelRegistryError, ValueError):
    """A version name that is not a plain folder name inside the registry (e.g. '../x')."""


class ModelNotFoundError(ModelRegistryError, LookupError):
    """No such version in the registry."""


class ModelIntegrityError(ModelRegistryError):
    """A stored version or the pointer to it is incomplete, altered or unreadable; the text is one line."""
