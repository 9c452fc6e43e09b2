"""callysto health: is an environment's hub serving?"""

from __future__ import annotations

import click

from callysto_infra.cli.common import env_option, json_option, load_env, not_available


@click.command("health")
@env_option
@click.option("--attempts", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 600))
@json_option
def group(env_name: str | None, attempts: int, timeout: float, as_json: bool) -> None:
    """Check the hub API, the proxy, the pool and free space."""
    load_env(env_name)
    not_available("health")
