"""callysto-infra: the operators' toolbox for Callysto JupyterHub fleets."""

__version__ = "0.1.0"
