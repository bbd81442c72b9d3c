# One PASS/FAIL line per check for compat-tests/ansible/run.sh.
#
# A check is a module task tagged `quiet` (its result is remembered, no line
# printed) followed by an `assert` task on the registered result, which
# prints the line: "PASS name", or "FAIL name: why" followed by the module's
# own error (msg, and the last line of its traceback) or, when the module
# succeeded, what it returned. Tasks that are not tagged `quiet` print their
# own PASS/FAIL line. An `assert` that passes with a success_msg prints it
# indented (used to record the text of an expected refusal).
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: oxcheck
    type: stdout
    short_description: PASS/FAIL lines for oxvirt's compat tests
    description: One line per check; a module task tagged quiet is reported by the assert after it.
"""

NOISE = {"invocation", "changed", "failed", "_ansible_no_log", "warnings",
         "deprecations", "attempts", "exception", "module_stdout",
         "module_stderr", "_ansible_verbose_always", "msg", "rc"}


def _is_assert(task):
    return task.action in ("assert", "ansible.builtin.assert", "ansible.legacy.assert")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "oxcheck"

    def __init__(self):
        super().__init__()
        self.last = None  # (result dict, failed) of the last quiet task

    def _out(self, line):
        self._display.display(line)

    def _detail(self, res, failed):
        lines = []
        if failed:
            if res.get("msg"):
                lines.append("module failed: %s" % str(res["msg"]).strip())
            exc = (res.get("exception") or "").strip().splitlines()
            if exc:
                lines.append(exc[-1])
            if res.get("module_stderr"):
                lines.extend(str(res["module_stderr"]).strip().splitlines()[-3:])
        else:
            data = {k: v for k, v in res.items() if k not in NOISE}
            if res.get("msg"):
                data["msg"] = res["msg"]
            text = json.dumps(data, sort_keys=True, default=str)
            lines.append("module returned: %s" % (text if len(text) < 1500 else text[:1500] + "..."))
        return lines

    def v2_playbook_on_play_start(self, play):
        self._out("# %s" % play.get_name().strip())

    def _report(self, result, ok):
        task = result._task
        res = result._result
        if "quiet" in task.tags:
            self.last = (res, not ok)
            return
        name = task.get_name()
        if ok:
            self._out("PASS %s" % name)
            if _is_assert(task):
                msg = res.get("msg", "")
                if msg and msg != "All assertions passed":
                    for line in str(msg).splitlines():
                        self._out("       | %s" % line)
            return
        why = res.get("msg", "failed")
        if _is_assert(task) and res.get("assertion"):
            why = "%s (%s)" % (why, res["assertion"])
        self._out("FAIL %s: %s" % (name, str(why).strip().splitlines()[0] if why else "failed"))
        if _is_assert(task):
            if self.last:
                for line in self._detail(*self.last):
                    self._out("       | %s" % line)
        else:
            for line in self._detail(res, True)[1:]:
                self._out("       | %s" % line)

    def v2_runner_on_ok(self, result):
        self._report(result, True)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._report(result, False)

    def v2_runner_on_unreachable(self, result):
        self._out("FAIL %s: host unreachable: %s" % (result._task.get_name(), result._result.get("msg", "")))

    def v2_runner_on_skipped(self, result):
        self._out("FAIL %s: skipped" % result._task.get_name())
