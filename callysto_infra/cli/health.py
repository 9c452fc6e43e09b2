"""callysto health: is an environment's hub serving?"""

from __future__ import annotations

import click

from callysto_infra.cli.common import emit, env_option, json_option, load_env


@click.command("health")
@env_option
@click.option(
    "--attempts",
    default=1,
    type=click.IntRange(1, 1000),
    help="Rounds of checks before giving up (a hub that is still starting needs a few).",
)
@click.option(
    "--timeout",
    default=5.0,
    type=click.FloatRange(0.1, 600),
    help="Seconds each request may take.",
)
@json_option
def group(env_name: str | None, attempts: int, timeout: float, as_json: bool) -> None:
    """Check the hub API, the proxy, the pool and free space."""
    from callysto_infra import health
    from callysto_infra.errors import OperationError

    env = load_env(env_name)
    report = health.wait(env, attempts=attempts, timeout=timeout)
    lines = (
        f"{'ok' if item.ok else 'FAIL':<5} {item.name:<11} {item.detail}" for item in report.checks
    )
    emit(as_json, report.as_dict(), lines)
    failure = report.first_failure
    if failure is not None:
        tries = f" after {report.attempts} attempts" if report.attempts > 1 else ""
        raise OperationError(
            f"the hub of '{env.name}' is not healthy{tries}: {failure.name}: {failure.detail}"
        )
