"""The Callysto sign-in page for JupyterHub, and the hub as a SAML service provider of the
sign-in proxy: the hub only ever learns a student's TargetedID hash, which the proxy computes.
"""

from pathlib import Path

TEMPLATES = str(Path(__file__).resolve().parent / "templates")

# The sign-in sources on the page, in the order shown (the proxy's multiauth sources).
SOURCES = ("institution", "google", "microsoft")
