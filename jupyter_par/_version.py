"""The one version string of jupyter_par (the lab extension's package.json must agree)."""

__version__ = "0.1.0"
