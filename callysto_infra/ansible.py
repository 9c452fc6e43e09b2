"""Running Ansible for an environment: the argv of every command (built as lists, with one shared
set of playbook options), the inventory as data, and results read from the JSON callback."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callysto_infra import everyhub, hubs, inventory, runner
from callysto_infra.environments import PROJECT_DIR
from callysto_infra.errors import OperationError, UsageError

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

PLAYBOOKS_DIR = PROJECT_DIR / "playbooks"
CONFIG_FILE = PLAYBOOKS_DIR / "ansible.cfg"
REQUIREMENTS_FILE = PLAYBOOKS_DIR / "requirements.yml"
COLLECTIONS_DIR = PROJECT_DIR / ".cache" / "ansible" / "collections"
RESULTS_VAR = "CALLYSTO_ANSIBLE_RESULTS"
MIN_FORKS = 5  # Ansible's own default
INSTALL_HINT = "install the project (pip install -e .), which brings ansible-core"
# A playbook's description: its first '## ' line. Files starting with '_' are pieces of others.
_DESCRIPTION = re.compile(r"^##\s*(.+?)\s*$")


# --- playbooks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Playbook:
    name: str
    path: Path
    description: str


def playbooks() -> list[Playbook]:
    """Every playbook under playbooks/ with the description from its first `## ` line."""
    found = []
    for path in sorted(PLAYBOOKS_DIR.glob("*.yml")):
        if path.name.startswith("_") or path.name == REQUIREMENTS_FILE.name:
            continue
        description = ""
        for line in path.read_text(encoding="utf-8").splitlines()[:5]:
            match = _DESCRIPTION.match(line)
            if match:
                description = match.group(1)
                break
        found.append(Playbook(path.stem, path, description))
    return found


def find_playbook(name: str) -> Playbook:
    """The playbook NAME (with or without .yml); an unknown one lists the known ones."""
    stem = name.removesuffix(".yml")
    for book in playbooks():
        if book.name == stem:
            return book
    known = ", ".join(b.name for b in playbooks())
    raise UsageError(
        f"unknown playbook '{name}' (known: {known}); see 'callysto ansible list-playbooks'"
    )


# --- the shared options and the argv of each command -------------------------------------------


@dataclass(frozen=True)
class Options:
    """The options every playbook command takes, in one place so every command behaves alike."""

    check: bool = False
    limit: str | None = None
    tags: str | None = None
    extra_vars: tuple[str, ...] = ()
    ansible_args: tuple[str, ...] = field(default_factory=tuple)
    # Hosts Ansible works on at once; run_playbook and run_adhoc set it for the inventory.
    forks: int | None = None

    @classmethod
    def parse(
        cls,
        *,
        check: bool = False,
        limit: str | None = None,
        tags: str | None = None,
        extra_vars: Sequence[str] = (),
        ansible_args: str | None = None,
    ) -> Options:
        for item in extra_vars:
            if "=" not in item and not item.startswith("@"):
                raise UsageError(f"extra variable '{item}' must be KEY=VALUE (or @FILE)")
        try:
            extra = tuple(shlex.split(ansible_args or ""))
        except ValueError as exc:
            raise UsageError(f"--ansible-args cannot be split: {exc}") from None
        return cls(check, limit, tags, tuple(extra_vars), extra)

    def argv(self) -> list[str]:
        argv: list[str] = []
        if self.check:
            argv += ["--check", "--diff"]
        if self.limit:
            argv += ["--limit", self.limit]
        if self.tags:
            argv += ["--tags", self.tags]
        for item in self.extra_vars:
            argv += ["--extra-vars", item]
        if self.forks:
            argv += ["--forks", str(self.forks)]
        # Last, so that an operator's own option (--ansible-args '--forks 3') wins.
        return argv + list(self.ansible_args)


def program(name: str) -> str:
    """An Ansible program: the one beside this Python (the project's venv), else from PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return runner.which(name, INSTALL_HINT)


def playbook_argv(source: str, book: Playbook, options: Options) -> list[str]:
    return [program("ansible-playbook"), "-i", source, *options.argv(), str(book.path)]


def adhoc_argv(
    source: str,
    pattern: str,
    module: str,
    module_args: str | None = None,
    options: Options = Options(),
    *,
    become: bool = False,
) -> list[str]:
    argv = [program("ansible"), pattern, "-i", source, "-m", module]
    if module_args:
        argv += ["-a", module_args]
    if become:
        argv += ["--become"]
    return argv + options.argv()


def inventory_argv(source: str) -> list[str]:
    return [program("ansible-inventory"), "-i", source, "--list"]


def galaxy_argv(requirements: Path, target: Path) -> list[str]:
    return [
        program("ansible-galaxy"), "collection", "install",
        "-r", str(requirements), "-p", str(target),
    ]  # fmt: skip


def environment(results_file: str | None = None) -> dict[str, str]:
    """Variables every Ansible process gets: our config, and where to write results."""
    variables = {
        "ANSIBLE_CONFIG": str(CONFIG_FILE),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_DIR),
        # The inventory plugin imports this package; make sure Ansible's Python finds it.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
        "ANSIBLE_FORCE_COLOR": os.environ.get("ANSIBLE_FORCE_COLOR", "0"),
    }
    if results_file:
        variables[RESULTS_VAR] = results_file
    return variables


# --- the inventory as data --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """ansible-inventory marks untrusted strings as {"__ansible_unsafe": "..."}: unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class InventoryView:
    """What Ansible itself sees: groups (transitively) and each host's variables."""

    groups: dict[str, list[str]]
    host_vars: dict[str, dict[str, Any]]

    def hosts(self, group: str | None = None) -> list[str]:
        if group is None:
            return sorted(self.host_vars)
        if group in self.host_vars:
            return [group]
        if group not in self.groups:
            known = ", ".join(sorted(g for g in self.groups if g not in ("all", "ungrouped")))
            raise UsageError(f"unknown group or host '{group}' (groups: {known})")
        return sorted(self.groups[group])

    def host(self, name: str) -> dict[str, Any]:
        if name in self.host_vars:
            return self.host_vars[name]
        for host, variables in self.host_vars.items():
            if variables.get("ansible_host") == name:
                return self.host_vars[host]
        known = ", ".join(sorted(self.host_vars)) or "none"
        raise UsageError(f"unknown host '{name}' (known: {known})")


def _members(data: dict[str, Any], group: str, seen: set[str]) -> set[str]:
    if group in seen:
        return set()
    seen.add(group)
    entry = data.get(group, {})
    hosts = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts |= _members(data, child, seen)
    return hosts


def load_inventory(env: Environment, *, limit: str | None = None) -> InventoryView:
    """ENV's inventory as Ansible builds it (plugin, group_vars and all), without touching a host;
    with LIMIT, only the hosts that Ansible matches to that pattern."""
    source = _checked_source(env)
    argv = inventory_argv(source) + (["--limit", limit] if limit else [])
    result = runner.run(argv, check=False, env=environment())
    if not result.ok:
        raise OperationError(
            f"the inventory of '{env.name}' cannot be read: {runner.last_line(result)}"
        )
    data = _plain(json.loads(result.stdout))
    groups = {name: sorted(_members(data, name, set())) for name in data if name != "_meta"}
    return InventoryView(groups, data.get("_meta", {}).get("hostvars", {}))


def _checked_source(env: Environment) -> str:
    # Read the state here first: a missing one is the operator's next step, not an Ansible error.
    inventory.build(env)
    return inventory.source_file(env)


# --- running, and reading the results ---------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """The JSON document of the callysto_results callback."""

    stats: dict[str, dict[str, int]]
    changed: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    unreachable: dict[str, str]
    results: dict[str, dict[str, Any]]
    returncode: int

    def total(self, key: str) -> int:
        return sum(host.get(key, 0) for host in self.stats.values())

    def hosts(self) -> list[str]:
        """Every host the run reached or tried to reach, sorted."""
        failed = {entry["host"] for entry in self.failed}
        return sorted(set(self.stats) | set(self.unreachable) | failed)

    def outcomes(self) -> list[everyhub.Outcome]:
        """Each host's part of the run: UNREACHABLE, FAILED at its first failed task, or ok with
        its recap counts."""
        first_failure: dict[str, dict[str, Any]] = {}
        for entry in self.failed:
            first_failure.setdefault(entry["host"], entry)
        found = []
        for host in self.hosts():
            if host in self.unreachable:
                found.append(everyhub.Outcome(host, everyhub.UNREACHABLE, self.unreachable[host]))
            elif host in first_failure:
                entry = first_failure[host]
                why = f"task '{entry['task']}': {entry.get('msg', 'see above')}"
                found.append(everyhub.Outcome(host, everyhub.FAILED, why))
            else:
                counts = self.stats.get(host, {})
                recap = " ".join(f"{key}={counts.get(key, 0)}" for key in ("ok", "changed"))
                found.append(everyhub.Outcome(host, everyhub.OK, recap))
        return found

    def failure(self) -> OperationError | None:
        """The run's one-line error: the first unreachable host, else the first failed task,
        with the other hosts that did not finish named after it; None when all finished."""
        bad = [outcome for outcome in self.outcomes() if not outcome.ok]
        if not bad:
            return None
        if self.unreachable:
            host, message = sorted(self.unreachable.items())[0]
            line = f"host '{host}' is unreachable: {message}"
        else:
            first = self.failed[0]
            host = first["host"]
            line = f"task '{first['task']}' failed on '{host}': {first.get('msg', 'see above')}"
        others = [f"{o.hub} ({o.status.lower()})" for o in bad if o.hub != host]
        if others:
            line += f"; {len(bad)} of {len(self.hosts())} hosts did not finish: also "
            line += ", ".join(others)
        return OperationError(line)


def _read_results(path: Path, returncode: int) -> Results:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        doc = {}
    return Results(
        stats=doc.get("stats", {}),
        changed=doc.get("changed", []),
        failed=doc.get("failed", []),
        unreachable=doc.get("unreachable", {}),
        results=doc.get("results", {}),
        returncode=returncode,
    )


def execute(argv: Sequence[str], *, stream: bool = True, check: bool = True) -> Results:
    """Run an Ansible command; its results come from the JSON callback. With CHECK, fails in one
    line when a host was unreachable or a task failed; without, the caller reads the results
    (Results.failure) and says so itself. A run that failed with no host to blame fails either
    way."""
    keep = os.environ.get(RESULTS_VAR)
    with tempfile.TemporaryDirectory(prefix="callysto-results-") as tmp:
        path = Path(keep) if keep else Path(tmp) / "results.json"
        path.unlink(missing_ok=True)
        proc = runner.run(argv, check=False, capture=not stream, env=environment(str(path)))
        results = _read_results(path, proc.returncode)
    failure = results.failure()
    if failure is not None:
        if check:
            raise failure
        return results
    if not proc.ok:
        detail = "" if stream else f": {runner.last_line(proc)}"
        raise OperationError(f"'{Path(argv[0]).name}' exited with status {proc.returncode}{detail}")
    return results


def forks_for(host_count: int) -> int:
    """Forks enough for every host at once: a fleet's hubs run each task together, so a run
    takes about as long on thirty hubs as on one (Ansible's default, 5, at the least)."""
    return max(MIN_FORKS, host_count)


def _with_forks(env: Environment, options: Options) -> Options:
    if options.forks:
        return options
    return replace(options, forks=forks_for(len(inventory.build(env).host_vars)))


def playbook_command(env: Environment, name: str, options: Options) -> list[str]:
    """The ansible-playbook argv of playbook NAME on ENV, with forks for its whole inventory."""
    if options.limit:
        load_inventory(env).hosts(options.limit)  # an unknown group or host: before anything runs
    book = find_playbook(name)
    argv = playbook_argv(_checked_source(env), book, _with_forks(env, options))
    if hubs.is_local_fleet(env):
        # The hubs of a local fleet share this machine's zfs-fuse and Docker daemon: one hub
        # at a time (hub.yml's plays read callysto_serial).
        argv[1:1] = ["--extra-vars", "callysto_serial=1"]
    return argv


def run_playbook(
    env: Environment, name: str, options: Options, *, stream: bool = True, check: bool = True
) -> Results:
    """Run playbook NAME on every host of ENV at once (see execute for CHECK)."""
    return execute(playbook_command(env, name, options), stream=stream, check=check)


def run_adhoc(
    env: Environment,
    pattern: str,
    module: str,
    module_args: str | None = None,
    options: Options = Options(),
    *,
    become: bool = False,
    stream: bool = False,
) -> Results:
    view = load_inventory(env)
    view.hosts(pattern)  # an unknown group or host is bad input, said before anything runs
    options = options if options.forks else replace(options, forks=forks_for(len(view.host_vars)))
    argv = adhoc_argv(
        inventory.source_file(env), pattern, module, module_args, options, become=become
    )
    return execute(argv, stream=stream)


def ipv4(env: Environment, host: str, *, live: bool = False) -> str:
    """HOST's public address as the inventory has it; with LIVE, the default IPv4 address the host
    itself reports (Ansible's setup facts)."""
    variables = load_inventory(env).host(host)
    if not live:
        return variables.get("ansible_host", host)
    name = variables.get("inventory_hostname", host)
    results = run_adhoc(env, name, "ansible.builtin.setup", "filter=ansible_default_ipv4")
    facts = next(iter(results.results.values()), {}).get("ansible_facts", {})
    address = facts.get("ansible_default_ipv4", {}).get("address")
    if not address:
        raise OperationError(f"host '{host}' reported no default IPv4 address")
    return address


def ssh_user(env: Environment, host: str) -> str:
    """The user Ansible logs in to HOST as: this machine's own user for a local connection."""
    variables = load_inventory(env).host(host)
    if variables.get("ansible_connection") == "local":
        import getpass

        return getpass.getuser()
    return variables.get("ansible_user", "root")


def list_playbook_hosts(env: Environment, name: str, options: Options = Options()) -> list[str]:
    """The hosts PLAYBOOK would run on: its plays' host patterns, matched by Ansible itself."""
    book = find_playbook(name)
    view = load_inventory(env)
    if options.limit:
        view.hosts(options.limit)
    hosts: set[str] = set()
    for pattern in play_patterns(book):
        hosts |= set(load_inventory(env, limit=pattern).host_vars)
    if options.limit:
        hosts &= set(load_inventory(env, limit=options.limit).host_vars)
    return sorted(hosts)


def play_patterns(book: Playbook) -> list[str]:
    import yaml

    plays = yaml.safe_load(book.path.read_text(encoding="utf-8")) or []
    patterns = []
    for play in plays:
        if isinstance(play, dict) and "hosts" in play:
            hosts = play["hosts"]
            patterns.append(":".join(hosts) if isinstance(hosts, list) else str(hosts))
    return patterns


def list_tasks(env: Environment, name: str, options: Options = Options()) -> str:
    book = find_playbook(name)
    argv = [*playbook_argv(_checked_source(env), book, options), "--list-tasks"]
    result = runner.run(argv, check=False, env=environment())
    if not result.ok:
        raise OperationError(f"cannot list the tasks of '{name}': {runner.last_line(result)}")
    return result.stdout


def setup() -> str:
    """Install the collections pinned in requirements.yml into the project-local path."""
    import yaml

    wanted = yaml.safe_load(REQUIREMENTS_FILE.read_text(encoding="utf-8")) or {}
    collections = wanted.get("collections") or []
    if not collections:
        return "nothing to install: the playbooks use ansible.builtin modules only"
    COLLECTIONS_DIR.mkdir(parents=True, exist_ok=True)
    runner.run(galaxy_argv(REQUIREMENTS_FILE, COLLECTIONS_DIR), capture=False, env=environment())
    return f"installed {len(collections)} collection(s) into {COLLECTIONS_DIR.relative_to(PROJECT_DIR)}"
