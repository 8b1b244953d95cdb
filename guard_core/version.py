"""The package version, in one place: both faces and the build read it from here."""

__version__ = "0.1.0"
