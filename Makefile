# callysto-infra: every target calls one `callysto` command (see README.md).
# Descriptions live here only, after '##' on each target's line; 'make help' reads them.
#
# Values reach `callysto` through the environment of the recipe, unexpanded by make and quoted
# there, so nothing typed on the command line is ever parsed by make or by a shell.

SHELL := /bin/sh
.DEFAULT_GOAL := help
.SUFFIXES:

PYTHON ?= python3
VENV := .venv
CALLYSTO ?= $(VENV)/bin/callysto
INSTALLED := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test

# The values operators give. make expands '$' in a value it passes on (ARGS='$(shell ...)' would
# run a command, 'cost:$5' would lose '$5'), so every variable set on the command line, and those
# below from the environment, becomes its own text, unexpanded: $(value ...) into a simple
# variable, which make passes on as it is.
VALUES := ENV HOST GROUP PLAYBOOK MODULE ARGS ANSIBLE_ARGS TARGET REFQUOTA SNAPSHOT USERHASH EMAIL \
  CONFIRM_PROD HUBS
# USER counts only when typed on the make command line: the login shell's $USER is not a student.
CALLYSTO_USER := $(if $(filter command line,$(origin USER)),$(value USER))
literal = $(eval override $(1) := $$(value $(1)))
$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(call literal,$(v))))
$(foreach v,$(VALUES),$(if $(filter environment,$(origin $(v))),$(call literal,$(v))))
CALLYSTO_USER := $(or $(value CALLYSTO_USER),$(value USERHASH),$(value EMAIL))
export CALLYSTO_USER
export $(VALUES)

# $(call opt,VAR,--flag) -> --flag "$VAR" when VAR is set, nothing otherwise.
opt = $${$(1):+$(2) "$$$(1)"}
# $(call arg,VAR) -> "$VAR" when VAR is set, nothing otherwise.
arg = $${$(1):+"$$$(1)"}
ENV_OPT = $(call opt,ENV,--env)
# A change to prod asks for its name at the terminal, or takes CONFIRM_PROD=<name>.
PROD_OPT = $(call opt,CONFIRM_PROD,--confirm-prod)
# $(call need,VAR ...) stops with one line naming the first missing make variable.
need = $(foreach v,$(1),$(if $(value $(v)),,$(error make $@: $(v) is required, e.g. make $@ $(v)=$(hint_$(v)))))
need_user = $(if $(CALLYSTO_USER),,$(error make $@: USER is required (a user hash or e-mail address), e.g. make $@ USER=$(hint_USER)))
hint_ENV := <environment>
hint_HOST := <host>
hint_GROUP := hub
hint_PLAYBOOK := hub
hint_MODULE := ping
hint_TARGET := module.hub.openstack_compute_instance_v2.hub
hint_REFQUOTA := 2G
hint_SNAPSHOT := <snapshot>
hint_USER := student@example.org

.PHONY: $(shell sed -n 's/^\([a-z][a-zA-Z0-9_/.-]*\):.*## .*/\1/p' $(firstword $(MAKEFILE_LIST)))

help: ## Lists the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z0-9_/.-]*:.*## / {printf "%-31s %s\n", $$1, $$2}' $(MAKEFILE_LIST) | LC_ALL=C sort

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	@touch $@

$(INSTALLED_TEST): $(INSTALLED) pyproject.toml
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@

test: $(INSTALLED_TEST) ## Runs the linters and the test suite
	scripts/bootstrap-system
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

local: $(INSTALLED) ## Brings up a whole hub on this machine (the local environment)
	@$(CALLYSTO) local up $(ENV_OPT) $(call opt,HUBS,--hubs)

local/stop: $(INSTALLED) ## Stops the local hub's services; the data stays
	@$(CALLYSTO) local stop $(ENV_OPT)

local/destroy: $(INSTALLED) ## Removes the local hub's pool and files (asks first)
	@$(CALLYSTO) local destroy $(ENV_OPT)

# --- Terraform -------------------------------------------------------------------------------

terraform/setup: $(INSTALLED) ## Runs any first steps when this repository is first cloned
	@$(CALLYSTO) terraform setup

terraform/init: $(INSTALLED) ## Runs "terraform init" for $ENV
	@$(CALLYSTO) terraform init $(ENV_OPT)

terraform/plan: $(INSTALLED) ## Runs "terraform plan" for $ENV
	@$(CALLYSTO) terraform plan $(ENV_OPT)

terraform/apply: $(INSTALLED) ## Runs "terraform apply" for $ENV
	@$(CALLYSTO) terraform apply $(ENV_OPT) $(PROD_OPT)

terraform/auto-apply: $(INSTALLED) ## Runs "terraform apply -auto-approve" for $ENV
	@$(CALLYSTO) terraform apply $(ENV_OPT) $(PROD_OPT) --auto-approve

terraform/destroy: $(INSTALLED) ## Runs "terraform destroy" for $ENV
	@$(CALLYSTO) terraform destroy $(ENV_OPT) $(PROD_OPT)

terraform/auto-destroy: $(INSTALLED) ## Runs "terraform destroy -auto-approve" for $ENV
	@$(CALLYSTO) terraform destroy $(ENV_OPT) $(PROD_OPT) --auto-approve

terraform/show: $(INSTALLED) ## Runs "terraform show" for $ENV
	@$(CALLYSTO) terraform show $(ENV_OPT)

terraform/list-targets: $(INSTALLED) ## Lists available targets in $ENV
	@$(CALLYSTO) terraform list-targets $(ENV_OPT)

terraform/taint: $(INSTALLED) ## Runs "terraform taint" on a $TARGET in $ENV
	@$(call need,TARGET)$(CALLYSTO) terraform taint $(ENV_OPT) $(PROD_OPT) "$$TARGET"

terraform/hub/new/dev: $(INSTALLED) ## Creates a new dev Terraform $ENV
	@$(CALLYSTO) terraform hub new dev $(call arg,ENV)

terraform/hub/new/prod: $(INSTALLED) ## Creates a new production Terraform $ENV
	@$(call need,ENV)$(CALLYSTO) terraform hub new prod "$$ENV"

terraform/hub/rebuild: $(INSTALLED) ## Rebuilds the instance in $ENV; its ZFS volumes and data stay
	@$(CALLYSTO) terraform hub rebuild $(ENV_OPT) $(PROD_OPT)

# --- Ansible ---------------------------------------------------------------------------------

ansible/setup: $(INSTALLED) ## Runs any first steps when this repository is first cloned
	@$(CALLYSTO) ansible setup

ansible/list-playbooks: $(INSTALLED) ## Lists plays
	@$(CALLYSTO) ansible list-playbooks

ansible/list-tasks: $(INSTALLED) ## Lists the tasks in a $PLAYBOOK in $ENV
	@$(call need,PLAYBOOK)$(CALLYSTO) ansible list-tasks $(ENV_OPT) "$$PLAYBOOK"

ansible/hosts: $(INSTALLED) ## Lists all hosts in $ENV
	@$(CALLYSTO) ansible hosts $(ENV_OPT)

ansible/hosts/group: $(INSTALLED) ## Lists the hosts in $GROUP in $ENV
	@$(call need,GROUP)$(CALLYSTO) ansible hosts $(ENV_OPT) --group "$$GROUP"

ansible/hosts/playbook: $(INSTALLED) ## Lists the hosts in $PLAYBOOK in $ENV
	@$(call need,PLAYBOOK)$(CALLYSTO) ansible hosts $(ENV_OPT) --playbook "$$PLAYBOOK"

ansible/ping: $(INSTALLED) ## Pings the hosts in $GROUP in $ENV
	@$(CALLYSTO) ansible ping $(ENV_OPT) $(call opt,GROUP,--group)

ansible/exec: $(INSTALLED) ## Executes $MODULE on $GROUP with $ARGS in $ENV
	@$(call need,MODULE)$(CALLYSTO) ansible exec $(ENV_OPT) $(call opt,GROUP,--group) "$$MODULE" $(call opt,ARGS,--args) $(call opt,ANSIBLE_ARGS,--ansible-args)

ansible/get-ipv4: $(INSTALLED) ## Returns the ipv4 address of $HOST in $ENV
	@$(call need,HOST)$(CALLYSTO) ansible get-ipv4 $(ENV_OPT) "$$HOST"

ansible/get-ssh-user: $(INSTALLED) ## Returns the ssh user of $HOST in $ENV
	@$(call need,HOST)$(CALLYSTO) ansible get-ssh-user $(ENV_OPT) "$$HOST"

ansible/playbook: $(INSTALLED) ## Runs $PLAYBOOK on $GROUP for reals in $ENV
	@$(call need,PLAYBOOK)$(CALLYSTO) ansible playbook $(ENV_OPT) $(call opt,GROUP,--group) $(call opt,ANSIBLE_ARGS,--ansible-args) "$$PLAYBOOK"

ansible/playbook/check: $(INSTALLED) ## Runs $PLAYBOOK on $GROUP in check-mode in $ENV
	@$(call need,PLAYBOOK)$(CALLYSTO) ansible playbook $(ENV_OPT) $(call opt,GROUP,--group) --check $(call opt,ANSIBLE_ARGS,--ansible-args) "$$PLAYBOOK"

# --- Students --------------------------------------------------------------------------------

quota/get: $(INSTALLED) ## Gets a quota for $USER in $ENV
	@$(need_user)$(CALLYSTO) quota get $(ENV_OPT) $(call opt,HOST,--host) "$$CALLYSTO_USER"

quota/set: $(INSTALLED) ## Sets a quota to $REFQUOTA for $USER in $ENV
	@$(need_user)$(call need,REFQUOTA)$(CALLYSTO) quota set $(ENV_OPT) $(call opt,HOST,--host) "$$CALLYSTO_USER" "$$REFQUOTA"

user/findhash: $(INSTALLED) ## Finds a hash for $USER in $ENV
	@$(need_user)$(CALLYSTO) user findhash $(ENV_OPT) "$$CALLYSTO_USER"

user/banuser: $(INSTALLED) ## Makes the home of $USER in $ENV read-only and stops their server
	@$(need_user)$(CALLYSTO) user ban $(ENV_OPT) $(call opt,HOST,--host) "$$CALLYSTO_USER"

user/unbanuser: $(INSTALLED) ## Makes the home of $USER in $ENV writable again
	@$(need_user)$(CALLYSTO) user unban $(ENV_OPT) $(call opt,HOST,--host) "$$CALLYSTO_USER"

zfsdir/delete: $(INSTALLED) ## Snapshots, then deletes the home of $USER in $ENV (asks first)
	@$(need_user)$(CALLYSTO) user delete-home $(ENV_OPT) $(call opt,HOST,--host) "$$CALLYSTO_USER"

# --- Images, backups, access -----------------------------------------------------------------

packer/build/hub: $(INSTALLED) ## Builds the JupyterHub OpenStack image
	@$(CALLYSTO) packer build hub $(ENV_OPT)

backup: $(INSTALLED) ## Performs a backup of sensitive data
	@$(CALLYSTO) backup

backup/homes: $(INSTALLED) ## Snapshots students' homes in $ENV and sends them to the backup
	@$(call need,ENV)$(CALLYSTO) backup homes $(ENV_OPT) $(call opt,HOST,--host)

backup/homes/status: $(INSTALLED) ## Shows the newest and oldest home snapshot per hub of $ENV
	@$(call need,ENV)$(CALLYSTO) backup homes status $(ENV_OPT)

backup/homes/restore: $(INSTALLED) ## Brings $SNAPSHOT back from the backup (the files of $USER)
	@$(call need,ENV SNAPSHOT)$(CALLYSTO) backup homes restore $(ENV_OPT) $(call opt,HOST,--host) --from "$$SNAPSHOT" $(call arg,CALLYSTO_USER)

ssh/shell: $(INSTALLED) ## SSH to a given $HOST in $ENV
	@$(call need,HOST)$(CALLYSTO) ssh shell $(ENV_OPT) "$$HOST"
