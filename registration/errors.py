"""Errors of the registration stage."""

from acquisition.errors import PrepError

__all__ = ["RegistrationError"]


class RegistrationError(PrepError):
    """A pair that cannot be registered, or an output folder that cannot be written."""
