"""The Callysto sign-in page for JupyterHub and the authenticators behind its buttons.

The hub only ever learns a student's TargetedID hash: on a cloud hub the SAML proxy computes it,
on a local (development) hub the development authenticator computes it the same way.
"""

from pathlib import Path

TEMPLATES = str(Path(__file__).resolve().parent / "templates")

# The sign-in sources on the page, in the order shown, and the user-hash source each one is.
SOURCES = {"institution": "saml", "google": "google", "microsoft": "microsoft"}
