"""The error table: each bad input is one line on stderr, exit 2, no traceback, nothing changed."""

from __future__ import annotations

import pytest


def test_no_environment_says_how_to_give_one(callysto, one_line_error):
    result = callysto("terraform", "plan")
    one_line_error(result, "--env NAME", "ENV=NAME", "CALLYSTO_ENV", code=2)


def test_unknown_environment_names_the_known_ones(callysto, one_line_error):
    callysto("env", "new", "dev", "brave-otter")
    callysto("env", "new", "local")
    result = callysto("quota", "list", "--env", "brave-oter")
    one_line_error(result, "unknown environment 'brave-oter'", "brave-otter, local", code=2)


def test_invalid_env_yaml_names_file_field_and_reason(callysto, envs_dir, one_line_error):
    callysto("env", "new", "local")
    env_yaml = envs_dir / "local" / "env.yaml"
    env_yaml.write_text(env_yaml.read_text().replace("refquota: 1G", "refquota: 1 gig"))
    result = callysto("env", "show", "--env", "local")
    one_line_error(result, "env.yaml", "hub.refquota", "invalid size", code=2)


def test_unknown_field_in_env_yaml_is_refused(callysto, envs_dir, one_line_error):
    callysto("env", "new", "local")
    env_yaml = envs_dir / "local" / "env.yaml"
    env_yaml.write_text(env_yaml.read_text() + "suport_email: x@y.z\n")
    result = callysto("terraform", "init", "--env", "local")
    one_line_error(result, "suport_email", "unknown field", code=2)


def test_env_yaml_that_is_not_yaml(callysto, envs_dir, one_line_error):
    callysto("env", "new", "local")
    (envs_dir / "local" / "env.yaml").write_text("type: [local\n")
    one_line_error(callysto("env", "show", "--env", "local"), "not valid YAML", code=2)


def test_missing_argument_is_one_line(callysto, one_line_error):
    one_line_error(callysto("quota", "set", "--env", "x"), "Missing argument", "--help", code=2)


@pytest.mark.parametrize("user", ["bob", "0123", "$(reboot)", "a@b", "DEADBEEF" * 5])
def test_bad_user_is_refused_before_anything_runs(callysto, user, one_line_error):
    one_line_error(callysto("quota", "get", "--env", "x", user), "invalid user", code=2)


@pytest.mark.parametrize("size", ["-1G", "10 G", "1e9", "$(reboot)", "1.5G", "G", "01G"])
def test_bad_size_is_refused(callysto, size, one_line_error):
    result = callysto("quota", "set", "--env", "x", "--", "a" * 40, size)
    one_line_error(result, "invalid size", code=2)


def test_debug_shows_the_traceback(callysto):
    result = callysto("--debug", "env", "show", "--env", "nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_debug_after_the_subcommand_is_not_ours(callysto, one_line_error):
    # Here '--debug' belongs to the command run on the hub: the error stays one line.
    result = callysto("ssh", "shell", "--env", "nope", "hub-01", "--", "zfs", "list", "--debug")
    one_line_error(result, "unknown environment 'nope'", code=2)


def test_debug_before_the_subcommand_shows_the_traceback_of_the_same_failure(callysto):
    result = callysto("--debug", "ssh", "shell", "--env", "nope", "hub-01", "--", "zfs", "list")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "unknown environment 'nope'" in result.stderr


def test_debug_given_to_a_subgroup_is_bad_usage(callysto, one_line_error):
    one_line_error(callysto("ssh", "--debug", "shell", "hub-01"), "--debug", "--help", code=2)
