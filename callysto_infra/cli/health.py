"""callysto health: is an environment's hub serving?"""

from __future__ import annotations

import click

from callysto_infra.cli.common import Count, emit, env_option, json_option, load_env


@click.command("health")
@env_option
@click.option(
    "--attempts",
    default=1,
    type=Count(1, 1000),
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
    """Check the hub API, the proxy, the pool and free space.

    Every hub is checked at once. With several hubs, a line per hub on stderr ends the
    report ('hub-a: ok', 'hub-b: FAILED: proxy: ...'), and a failure names the first hub that
    is not healthy.
    """
    from callysto_infra import everyhub, health
    from callysto_infra.errors import OperationError

    env = load_env(env_name)
    report = health.wait(env, attempts=attempts, timeout=timeout)
    lines = (
        f"{'ok' if item.ok else 'FAIL':<5} {item.name:<11} {item.detail}" for item in report.checks
    )
    emit(as_json, report.as_dict(), lines)
    outcomes = report.outcomes()
    if len(outcomes) > 1:
        for line in everyhub.summary(outcomes):
            click.echo(line, err=True)
    failure = report.first_failure
    if failure is None:
        return
    tries = f" after {report.attempts} attempts" if report.attempts > 1 else ""
    unhealthy = everyhub.failures(outcomes)
    if len(outcomes) > 1 and unhealthy:
        raise OperationError(
            f"{len(unhealthy)} of {len(outcomes)} hubs of '{env.name}' are not healthy{tries}: "
            f"{unhealthy[0].line()}"
        )
    raise OperationError(
        f"the hub of '{env.name}' is not healthy{tries}: {failure.name}: {failure.detail}"
    )
