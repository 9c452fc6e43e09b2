"""Terraform (or OpenTofu) for one environment: its root module, generated from the one template and
env.yaml, and the guarded commands operators run on it (plan, apply, destroy, ...). Progress goes to
the callbacks the caller passes: nothing here prints."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callysto_infra import locking, runner, secretfiles, tfstate
from callysto_infra.errors import OperationError, UsageError
from callysto_infra.paths import PROJECT_DIR, display
from callysto_infra.progress import Say

if TYPE_CHECKING:
    from callysto_infra.environments import Environment

ROOT_DIR = PROJECT_DIR / "terraform" / "root"
MODULES_DIR = PROJECT_DIR / "terraform" / "modules"
# The root requires the Terraform and provider versions its module requires: one file says both.
VERSIONS_FILE = MODULES_DIR / "hub" / "versions.tf"
TFVARS_FILE = "terraform.tfvars.json"
PLAN_FILE = "terraform.tfplan"
PLAN_INFO_FILE = "terraform.tfplan.json"
DESTROY_PLAN_FILE = "destroy.tfplan"
# What Terraform writes that can hold secrets (resource attributes, variables): private to the
# operator, however the umask of the shell that ran it was set.
PRIVATE_FILES = ("terraform.tfstate", "terraform.tfstate.backup", "*.tfplan", "*.tfplan.json")
BINARY_VAR = "CALLYSTO_TERRAFORM"
INSTALL_HINT = (
    "install Terraform >= 1.0 (https://developer.hashicorp.com/terraform/install) or OpenTofu "
    f"(https://opentofu.org/docs/intro/install/), or set {BINARY_VAR} to the binary's path"
)

# Before fleets, an environment's one hub was module.hub; it is module.hub["<name>"] now.
SINGLE_HUB_MODULE = "module.hub"


def hub_module(name: str) -> str:
    return f"module.hub[{json.dumps(name)}]"


def instance_address(name: str) -> str:
    return f"{hub_module(name)}.openstack_compute_instance_v2.hub"


def volume_addresses(name: str) -> tuple[str, str]:
    return tuple(f"{hub_module(name)}.openstack_blockstorage_volume_v3.zfs[{n}]" for n in (0, 1))


Confirm = Callable[[str], bool]
# Receives a plan's summary: one line per changing resource, then Terraform's "Plan: ..." line.
ShowPlan = Callable[[list[str]], None]


@dataclass(frozen=True)
class Operator:
    """How a command that asks before changing things talks with the operator: its steps (one
    line each), the summary of the plan it asks about, and the yes/no question itself.

    A prod environment asks more: its name, typed at a terminal (TYPE_NAME, which returns what was
    typed), unless CONFIRM_PROD (--confirm-prod) already names it. Without a terminal to ask at
    (INTERACTIVE false) and without CONFIRM_PROD, a change to prod is refused before it starts."""

    say: Say
    show_plan: ShowPlan
    confirm: Confirm
    type_name: Callable[[str], str] | None = None
    interactive: bool = False
    confirm_prod: str | None = None


class Aborted(OperationError):
    def __init__(self) -> None:
        super().__init__("aborted: nothing was changed")


def _prod_may_change(env: Environment, operator: Operator, action: str) -> None:
    """Before anything runs: refuse a change to prod that nobody can confirm, or whose
    --confirm-prod names another environment."""
    if env.type != "prod":
        if operator.confirm_prod is not None and operator.confirm_prod != env.name:
            raise UsageError(
                f"--confirm-prod {operator.confirm_prod} does not name environment '{env.name}'"
            )
        return
    if operator.confirm_prod is None and not operator.interactive:
        raise UsageError(
            f"environment '{env.name}' is prod: {action} needs its name typed at a terminal, "
            f"or --confirm-prod {env.name} (make: CONFIRM_PROD={env.name}); nothing was changed"
        )
    if operator.confirm_prod is not None and operator.confirm_prod != env.name:
        raise UsageError(
            f"environment '{env.name}' is prod: --confirm-prod {operator.confirm_prod} does not "
            f"name it (--confirm-prod {env.name}); nothing was changed"
        )


def _approved(env: Environment, operator: Operator, question: str, auto_approve: bool) -> bool:
    """After the summary was shown: prod needs its name (given or typed), anything else a yes."""
    if env.type == "prod":
        if operator.confirm_prod == env.name:
            return True
        if operator.type_name is None:
            return False
        operator.say(f"'{env.name}' is a PRODUCTION environment: {question}")
        return operator.type_name(f"Type the environment's name ({env.name}) to go on") == env.name
    return auto_approve or operator.confirm(question)


# --- the binary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary:
    path: str
    source: str  # where it was found: $CALLYSTO_TERRAFORM or PATH

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def version(self) -> str:
        result = runner.run([self.path, "version", "-json"], check=False)
        try:
            return json.loads(result.stdout)["terraform_version"]
        except (ValueError, KeyError, TypeError):
            raise OperationError(
                f"'{self.path}' did not report its version: is it Terraform or OpenTofu?"
            ) from None


def find_binary() -> Binary:
    """$CALLYSTO_TERRAFORM (a name or a path) if set, else terraform, else tofu, from PATH."""
    configured = os.environ.get(BINARY_VAR)
    if configured:
        path = shutil.which(configured)
        if path is None:
            raise OperationError(f"{BINARY_VAR}={configured} is not a program: {INSTALL_HINT}")
        return Binary(path, BINARY_VAR)
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return Binary(path, "PATH")
    raise OperationError(f"neither 'terraform' nor 'tofu' was found on PATH: {INSTALL_HINT}")


def setup() -> dict[str, str]:
    """Which binary is used, where it came from and its version."""
    binary = find_binary()
    return {
        "binary": binary.name,
        "path": binary.path,
        "source": binary.source,
        "version": binary.version(),
    }


# --- the environment's root module ------------------------------------------------------------


def tfvars(env: Environment) -> dict[str, Any]:
    """Terraform's variables for ENV, from its validated env.yaml (the only source of values)."""
    config, cloud = env.config, env.config.cloud
    assert cloud is not None  # dev and prod environments always have one (validated)
    return {
        "environment": env.name,
        "environment_type": env.type,
        "cloud": cloud.cloud,
        "region": cloud.region,
        "host": {"name": config.host.name, "domain": config.host.domain},
        "hubs": {
            hub.name: {
                "existing_volume_ids": list(hub.existing_volumes),
                "floating_ip": hub.floating_ip,
            }
            for hub in config.fleet
        },
        "openstack": {
            "dns_zone": cloud.dns_zone,
            "image_name": cloud.image,
            "flavor_name": cloud.flavor,
            "key_pair": cloud.key_pair,
            "ssh_user": cloud.ssh_user,
            "network_name": cloud.network,
            "disk_id_prefix": cloud.disk_id_prefix,
        },
        "ipv6": cloud.ipv6,
        "volume_size_gb": config.hub.volume_size_gb,
        "floating_ip_pool": cloud.floating_ip_pool,
        "frontdoor": None
        if config.frontdoor is None
        else {"name": config.frontdoor.name, "floating_ip": config.frontdoor.floating_ip},
    }


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


_MODULE_CALL = re.compile(r'^module\s+"([a-z_][a-z0-9_-]*)"\s*\{', re.M)


def _called_modules() -> set[str]:
    """The modules the root template calls."""
    return {
        name for path in ROOT_DIR.glob("*.tf") for name in _MODULE_CALL.findall(path.read_text())
    }


def _installed_modules(root: Path) -> set[str] | None:
    """The modules `terraform init` installed in ROOT, or None before the first init."""
    listing = root / ".terraform" / "modules" / "modules.json"
    try:
        modules = json.loads(listing.read_text(encoding="utf-8")).get("Modules", [])
    except (OSError, ValueError):
        return None
    return {m.get("Key") for m in modules if isinstance(m, dict) and m.get("Key")}


def write_root(env: Environment) -> None:
    """Make envs/<ENV>/ a Terraform root: the template, a link to the modules and the variables
    from env.yaml. Done before every command, so edits to env.yaml (or to the template) reach the
    next plan, and the copies an older callysto wrote are replaced by the same names."""
    for source in [*sorted(ROOT_DIR.glob("*.tf")), VERSIONS_FILE]:
        _write_if_changed(env.path / source.name, source.read_text(encoding="utf-8"))
    link = env.path / "modules"
    target = os.path.relpath(MODULES_DIR, env.path)
    if link.is_symlink():
        if os.readlink(link) != target:
            link.unlink()
            link.symlink_to(target)
    elif link.exists():
        raise OperationError(
            f"{display(link)} is not the link to terraform/modules that callysto makes: "
            "move it away and run the command again"
        )
    else:
        link.symlink_to(target)
    _write_if_changed(
        env.path / TFVARS_FILE, json.dumps(tfvars(env), indent=2, sort_keys=True) + "\n"
    )


# --- running Terraform in the root ------------------------------------------------------------


def _error_line(result: runner.Result) -> str:
    """Terraform's own one-line reason ('Error: ...') from a failed run's output."""
    lines = [
        line.strip().lstrip("│╷╵").strip()
        for line in (result.stderr + "\n" + result.stdout).splitlines()
    ]
    for i, line in enumerate(lines):
        if line.startswith("Error: "):
            detail = next((x for x in lines[i + 1 :] if x and not x.startswith("on ")), "")
            return f"{line} {detail}".strip()
    return runner.last_line(result)


class Workspace:
    """One environment's Terraform root, with the binary that runs in it and the callback that
    tells the operator what happens."""

    def __init__(self, env: Environment, say: Say):
        if env.type == "local":
            raise UsageError(
                f"environment '{env.name}' is local: this machine is the hub and Terraform has "
                "nothing to create (use 'callysto local up')"
            )
        self.env = env
        self.say = say
        self.binary = find_binary()

    @property
    def plan_file(self) -> Path:
        return self.env.path / PLAN_FILE

    @property
    def plan_info_file(self) -> Path:
        return self.env.path / PLAN_INFO_FILE

    def banner(self, action: str) -> None:
        kind = "PRODUCTION" if self.env.type == "prod" else self.env.type
        self.say(
            f"=== environment {self.env.name} ({kind}, {self.env.fqdn}): {self.binary.name} {action}"
        )

    def run(self, *args: str, stream: bool = False, check: bool = True) -> runner.Result:
        argv = [self.binary.path, f"-chdir={self.env.path}", *args]
        environ = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
        try:
            if stream:
                if not sys.stdout.isatty():
                    argv.insert(3, "-no-color")
                return runner.stream(argv, check=check, env=environ, umask=0o077)
            if args and args[0] not in ("version", "fmt", "state"):
                argv.insert(3, "-no-color")
            result = runner.run(argv, check=False, env=environ, umask=0o077)
        finally:
            self.make_private()
        if check and not result.ok:
            raise OperationError(
                f"{self.binary.name} {args[0]} failed for environment '{self.env.name}': "
                f"{_error_line(result)}"
            )
        return result

    def make_private(self) -> None:
        """States, plans and state backups 0600, state-backups/ 0700: also those written before."""
        found = [p for pattern in PRIVATE_FILES for p in self.env.path.glob(pattern)]
        backups = self.env.path / locking.BACKUP_DIR
        secretfiles.make_private([*found, backups, *locking.backups(self.env.state_file)])

    def prepare_root(self) -> dict[str, Any] | None:
        """Fix the private files, check the state, write the root."""
        self.make_private()
        state = tfstate.read(self.env)
        write_root(self.env)
        return state

    def prepare(self) -> dict[str, Any] | None:
        """Check the state, write the root and initialise it when needed (the first run, or a
        root that calls a module the last init did not install); returns the state."""
        state = self.prepare_root()
        installed = _installed_modules(self.env.path)
        if installed is None:
            self.say(f"initialising {display(self.env.path)} (first run)")
            self.run("init", "-input=false")
        elif not _called_modules() <= installed:
            self.say(f"initialising {display(self.env.path)} again (the root calls new modules)")
            self.run("init", "-input=false")
        return self._one_module_per_hub(state)

    def _one_module_per_hub(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """A state from before fleets has the one hub at module.hub: move it to the instance of
        its name (a state backup first), so Terraform sees the same hub, not a new one."""
        if state is None or not any(
            r.get("module") == SINGLE_HUB_MODULE for r in state.get("resources", [])
        ):
            return state
        name = self.env.config.host.name
        self.say(f"moving the hub in the state to {hub_module(name)} (one module per hub)")
        tfstate.backup(self.env)
        self.run("state", "mv", "-lock=true", SINGLE_HUB_MODULE, hub_module(name))
        self.make_private()
        return tfstate.read(self.env)

    def show_json(self, plan: Path | None = None) -> dict[str, Any]:
        args = ["show", "-json"] + ([str(plan.resolve())] if plan else [])
        return json.loads(self.run(*args).stdout or "{}")

    def plan(self, *extra: str, out: Path) -> dict[str, Any]:
        """Plan into OUT and return the plan as data."""
        self.run("plan", "-input=false", f"-out={out.name}", *extra)
        return self.show_json(out)

    def apply_plan(self, plan: Path) -> None:
        tfstate.backup(self.env)
        self.run("apply", "-input=false", str(plan.resolve()), stream=True)

    def forget_plans(self, *others: Path) -> None:
        for path in (self.plan_file, self.plan_info_file, self.env.path / DESTROY_PLAN_FILE):
            path.unlink(missing_ok=True)
        for path in others:
            path.unlink(missing_ok=True)
            info_file(path).unlink(missing_ok=True)


@contextmanager
def _guarded(env: Environment, action: str, say: Say) -> Iterator[Workspace]:
    """The workspace of ENV, announced, under the environment's lock."""
    workspace = Workspace(env, say)
    workspace.banner(action)
    with locking.hold(env.path, env.name, f"callysto terraform {action}"):
        # A destroy plan is never kept: one found by the lock's holder was left by a command that
        # was stopped (an older callysto, a kill -9), and goes before it can be applied by mistake.
        (env.path / DESTROY_PLAN_FILE).unlink(missing_ok=True)
        yield workspace


# --- plans: bound to their environment, current or stale ---------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _state_mark(env: Environment) -> dict[str, Any]:
    """What a plan was made against: the state's serial and lineage, and its exact bytes."""
    state = tfstate.read(env)
    return {
        "serial": None if state is None else state.get("serial"),
        "lineage": None if state is None else state.get("lineage"),
        "sha256": _sha256(env.state_file),
    }


def info_file(plan: Path) -> Path:
    """The record 'callysto terraform plan' writes beside each plan it saves."""
    return plan.with_name(f"{plan.name}.json")


def _plan_info(env: Environment, plan: Path) -> dict[str, Any]:
    return {
        "plan_sha256": _sha256(plan),
        "environment": env.name,
        "env_yaml_sha256": _sha256(env.path / "env.yaml"),
        "tfvars": _digest(tfvars(env)),
        "state": _state_mark(env),
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _plan_problem(env: Environment, plan: Path) -> str | None:
    """Why PLAN may not be applied to ENV now (a phrase following the plan's name), or None.

    Only a plan saved by 'callysto terraform plan' is applied: its record says for which
    environment, env.yaml and state it was made, and holds the plan's own checksum, so a plan left
    by a stopped command, copied from elsewhere or made before the state moved on is refused."""
    record = info_file(plan)
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"was not saved by 'callysto terraform plan' (there is no {record.name} beside it)"
    except (OSError, UnicodeDecodeError, ValueError):
        info = None
    if not isinstance(info, dict):
        return f"has a {record.name} beside it that callysto did not write"
    if info.get("plan_sha256") != _sha256(plan):
        return "was changed after 'callysto terraform plan' saved it"
    if info.get("environment") != env.name:
        return f"was made for environment '{info.get('environment')}', not '{env.name}'"
    if info.get("env_yaml_sha256") != _sha256(env.path / "env.yaml") or info.get(
        "tfvars"
    ) != _digest(tfvars(env)):
        return f"is stale: env.yaml of '{env.name}' changed since the plan was made"
    now = _state_mark(env)
    if info.get("state") != now:
        then = (info.get("state") or {}).get("serial")
        return (
            f"is stale: the state of '{env.name}' changed since the plan was made "
            f"(serial {then}, now {now['serial']})"
        )
    return None


def plan_environment(plan: dict[str, Any]) -> str | None:
    """The environment a plan was made for, from the variables Terraform recorded in it."""
    return plan.get("variables", {}).get("environment", {}).get("value")


def summarize(plan: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """One line per changing resource, and Terraform's add/change/destroy counts, from plan JSON."""
    symbols = {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}
    counts = {"add": 0, "change": 0, "destroy": 0}
    lines = []
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if set(actions) == {"create", "delete"}:
            kind = "replace"
            counts["add"] += 1
            counts["destroy"] += 1
        elif actions == ["create"]:
            kind = "create"
            counts["add"] += 1
        elif actions == ["update"]:
            kind = "update"
            counts["change"] += 1
        elif actions == ["delete"]:
            kind = "delete"
            counts["destroy"] += 1
        else:
            continue  # no-op, read
        lines.append(f"  {symbols[kind]:>3} {change['address']} ({kind})")
    return lines, counts


def _show_summary(plan: dict[str, Any], show_plan: ShowPlan) -> dict[str, int]:
    lines, counts = summarize(plan)
    show_plan(
        [
            *lines,
            f"Plan: {counts['add']} to add, {counts['change']} to change, "
            f"{counts['destroy']} to destroy.",
        ]
    )
    return counts


def _bound_document(workspace: Workspace, plan_path: Path) -> dict[str, Any]:
    """The plan as data, refused when it is not a plan or was made for another environment."""
    try:
        document = workspace.show_json(plan_path)
    except (OperationError, ValueError):
        raise UsageError(f"{display(plan_path)} is not a Terraform plan file") from None
    made_for = plan_environment(document)
    if made_for != workspace.env.name:
        raise UsageError(
            f"plan {display(plan_path)} was made for environment '{made_for}', not "
            f"'{workspace.env.name}': run 'callysto terraform plan --env {workspace.env.name}'"
        )
    return document


# --- the commands --------------------------------------------------------------------------
# Each takes SAY for its steps (one line each), or an Operator when it asks before a change; the
# CLI decides where they go (stderr, stdout, a prompt).


def init(env: Environment, *, say: Say) -> None:
    with _guarded(env, "init", say) as workspace:
        workspace.prepare_root()
        workspace.run("init", "-input=false", stream=True)


def plan(env: Environment, *, say: Say) -> None:
    """Plan, showing Terraform's own account of it, and save the plan (bound to ENV) for 'apply'."""
    with _guarded(env, "plan", say) as workspace:
        workspace.prepare()
        workspace.forget_plans()
        try:
            workspace.run("plan", "-input=false", f"-out={PLAN_FILE}", stream=True)
            secretfiles.write(
                workspace.plan_info_file,
                json.dumps(_plan_info(env, workspace.plan_file), indent=2) + "\n",
            )
        except BaseException:
            workspace.forget_plans()  # a plan without its record, or cut short, is no plan
            raise
        say(
            f"saved the plan for '{env.name}' in {display(workspace.plan_file)}: apply it with "
            f"'callysto terraform apply --env {env.name}'"
        )


def apply(
    env: Environment,
    *,
    auto_approve: bool = False,
    plan_file: Path | None = None,
    operator: Operator,
) -> None:
    """Apply the saved plan if it is still current; otherwise plan, show the summary and ask.
    Prod asks for its name in every case (a saved plan, a --plan FILE, a new plan)."""
    say = operator.say
    _prod_may_change(env, operator, "apply")
    with _guarded(env, "apply", say) as workspace:
        if plan_file is not None:
            problem = _plan_problem(env, plan_file)
            if problem:
                raise UsageError(
                    f"plan {display(plan_file)} {problem}: run 'callysto terraform plan --env "
                    f"{env.name}' and apply that (nothing was changed)"
                )
        workspace.prepare()
        applied: Path | None = None
        try:
            question = f"Apply these changes to '{env.name}'?"
            if plan_file is not None:
                say(f"applying {display(plan_file)}")
                chosen = plan_file
                _show_summary(_bound_document(workspace, chosen), operator.show_plan)
                approved = env.type != "prod" or _approved(env, operator, question, True)
            elif _plan_problem(env, workspace.plan_file) is None:
                chosen = workspace.plan_file
                say(f"applying the plan saved by 'callysto terraform plan' ({display(chosen)})")
                _show_summary(_bound_document(workspace, chosen), operator.show_plan)
                approved = env.type != "prod" or _approved(env, operator, question, True)
            else:
                say("no current saved plan: planning now")
                chosen = workspace.plan_file
                document = workspace.plan(out=chosen)
                counts = _show_summary(document, operator.show_plan)
                if not any(counts.values()):
                    say("nothing to change")
                    return
                approved = _approved(env, operator, question, auto_approve)
            if not approved:
                raise Aborted()
            applied = chosen
            workspace.apply_plan(chosen)
        finally:
            # Applied or not, a saved plan is stale once apply has run against the state.
            workspace.forget_plans(*([applied] if applied is not None else []))


def destroy(env: Environment, *, auto_approve: bool = False, operator: Operator) -> None:
    _prod_may_change(env, operator, "destroy (its volumes and floating IP are adopted and stay)")
    with _guarded(env, "destroy", operator.say) as workspace:
        state = workspace.prepare()
        if not state or not state.get("resources"):
            operator.say(f"environment '{env.name}' has nothing to destroy")
            return
        out = env.path / DESTROY_PLAN_FILE
        try:
            document = workspace.plan("-destroy", out=out)
            _show_summary(document, operator.show_plan)
            question = f"Destroy these resources of '{env.name}'?"
            if not _approved(env, operator, question, auto_approve):
                raise Aborted()
            workspace.apply_plan(out)
        finally:
            workspace.forget_plans()


def show(env: Environment, *, as_json: bool = False, say: Say) -> dict[str, Any] | str:
    workspace = Workspace(env, say)
    workspace.banner("show")  # a step, not the result: --json output stays one document
    if workspace.prepare() is None:
        return {} if as_json else f"environment '{env.name}' has no state yet"
    if as_json:
        return workspace.show_json()
    return workspace.run("show").stdout


def list_targets(env: Environment, *, say: Say) -> list[str]:
    """Resource addresses in ENV's state, for taint and -replace."""
    Workspace(env, say).banner("list-targets")
    return tfstate.addresses(tfstate.read(env))


def taint(env: Environment, target: str, *, operator: Operator) -> None:
    say = operator.say
    _prod_may_change(env, operator, "taint")
    with _guarded(env, "taint", say) as workspace:
        state = workspace.prepare()
        if state is None:
            raise UsageError(f"environment '{env.name}' has no state yet: nothing to taint")
        known = tfstate.addresses(state)
        if target not in known:
            raise UsageError(
                f"'{target}' is not a resource of environment '{env.name}' (known: "
                f"{', '.join(known) or 'none'}); see 'callysto terraform list-targets'"
            )
        operator.show_plan([f"  -/+ {target} (replaced at the next apply)"])
        if not _approved(env, operator, f"Taint {target} of '{env.name}'?", True):
            raise Aborted()
        tfstate.backup(env)
        workspace.forget_plans()
        workspace.run("taint", target)
        say(f"{target} will be replaced at the next apply")


def _hub_to_rebuild(env: Environment, name: str | None):
    fleet = env.config.fleet
    names = [hub.name for hub in fleet]
    if name is None:
        if len(fleet) > 1:
            raise UsageError(
                f"environment '{env.name}' has {len(fleet)} hubs: say which with --hub NAME "
                f"({', '.join(names)})"
            )
        return fleet[0]
    for hub in fleet:
        if name in (hub.name, f"{hub.name}.{env.config.host.domain}"):
            return hub
    raise UsageError(f"environment '{env.name}' has no hub {name!r} (hubs: {', '.join(names)})")


def rebuild(
    env: Environment,
    *,
    hub: str | None = None,
    with_volumes: bool = False,
    auto_approve: bool = False,
    operator: Operator,
    confirm_volumes: Callable[[str], bool],
) -> None:
    """Replace a hub's instance; with_volumes also replaces both ZFS volumes (and their data)."""
    chosen = _hub_to_rebuild(env, hub)
    if with_volumes and chosen.existing_volumes:
        raise UsageError(
            f"hub '{chosen.name}' of '{env.name}' adopts existing volumes: --with-volumes cannot "
            "replace them (they are not Terraform's to delete)"
        )
    _prod_may_change(env, operator, "hub rebuild")
    with _guarded(env, "hub rebuild", operator.say) as workspace:
        known = tfstate.addresses(workspace.prepare())
        instance = instance_address(chosen.name)
        if instance not in known:
            raise UsageError(
                f"environment '{env.name}' has no hub '{chosen.name}' to rebuild yet: run "
                f"'callysto terraform apply --env {env.name}'"
            )
        replace = [instance]
        if with_volumes:
            if not confirm_volumes(env.name):
                raise Aborted()
            replace += [v for v in volume_addresses(chosen.name) if v in known]
        try:
            document = workspace.plan(*(f"-replace={a}" for a in replace), out=workspace.plan_file)
            _show_summary(document, operator.show_plan)
            question = f"Rebuild hub '{chosen.name}' of '{env.name}'?"
            if not _approved(env, operator, question, auto_approve):
                raise Aborted()
            workspace.apply_plan(workspace.plan_file)
        finally:
            workspace.forget_plans()
