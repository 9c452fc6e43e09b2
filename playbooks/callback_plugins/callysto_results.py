"""Ansible callback `callysto_results`: the outcome of a run as one JSON document, so that the
`callysto` wrapper and the tests read results as data while the operator still sees the usual output."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: callysto_results
    type: aggregate
    short_description: Writes the run's results as JSON to $CALLYSTO_ANSIBLE_RESULTS
    description:
        - Does nothing unless CALLYSTO_ANSIBLE_RESULTS names a file.
        - The document holds the recap per host (ok, changed, failed, unreachable, skipped),
          the tasks that changed or failed, and for ad-hoc commands each host's module result.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "callysto_results"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("CALLYSTO_ANSIBLE_RESULTS")
        self._doc = {"stats": {}, "changed": [], "failed": [], "unreachable": {}, "results": {}}
        self._adhoc = False

    def _write(self):
        if not self._path:
            return
        tmp = f"{self._path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self._doc, handle, indent=1, sort_keys=True, default=str)
        os.replace(tmp, self._path)

    def v2_playbook_on_play_start(self, play):
        self._adhoc = play.get_name().strip() == "Ansible Ad-Hoc"

    def _entry(self, result, status):
        res = result._result
        entry = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "status": status,
        }
        # A failed command's own stderr says more than Ansible's "non-zero return code".
        for key in ("stderr", "msg"):
            lines = [line.strip() for line in str(res.get(key) or "").splitlines() if line.strip()]
            if lines:
                entry["msg"] = " ".join(lines[-2:]) if key == "stderr" else lines[-1]
                break
        return entry

    def _record(self, result, status):
        host = result._host.get_name()
        if self._adhoc:
            # Ad-hoc results are what the operator asked for (no_log results are already censored).
            self._doc["results"][host] = {
                k: v for k, v in result._result.items() if not k.startswith("_ansible")
            }
        if status == "changed":
            self._doc["changed"].append(self._entry(result, status))
        elif status == "failed":
            self._doc["failed"].append(self._entry(result, status))
        elif status == "unreachable":
            self._doc["unreachable"][host] = self._entry(result, status).get("msg", "unreachable")
        self._write()

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        if self._adhoc:
            self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed):
            self._doc["stats"][host] = stats.summarize(host)
        self._write()
