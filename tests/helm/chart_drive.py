"""Drive one Helm action on the connection-operator chart with the real Helm library
(helm-sdkpy, Helm compiled in). Run by tests/chart.rs, which checks the outcome with kubectl.

usage: chart_drive.py lint CHART
       chart_drive.py KUBECONFIG NAMESPACE (install|upgrade|uninstall) RELEASE [CHART] [VALUES_JSON]

Prints the action's result as one JSON document on stdout; exits 1 with the Helm error on
stderr when the action fails (a lint with errors fails too).
"""

import asyncio
import json
import sys

import helm_sdkpy
from helm_sdkpy.exceptions import HelmError

# The emulator runs no workloads (Deployments never become ready): no action waits for
# readiness; what is under test is what Helm writes to the API server.
NO_WAIT = False


async def drive(config, action, release, chart, values):
    if action == "install":
        return await helm_sdkpy.Install(config).run(release, chart, values=values, wait=NO_WAIT, timeout=120)
    if action == "upgrade":
        return await helm_sdkpy.Upgrade(config).run(release, chart, values=values, wait=NO_WAIT, timeout=120)
    if action == "uninstall":
        return await helm_sdkpy.Uninstall(config).run(release, wait=True, timeout=120)
    raise ValueError(f"unknown action {action!r}")


def lint(chart):
    """Lint the chart; fails on any message of severity error (Helm's support.ErrorSev = 3)."""
    result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(chart))
    json.dump(result, sys.stdout, default=str)
    print()
    messages = result.get("Messages") or []
    errors = [m for m in messages if int(m.get("Severity", 0)) >= 3]
    return 1 if errors or result.get("Errors") else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "lint":
        try:
            return lint(argv[2])
        except HelmError as e:
            print(f"helm lint failed: {e}", file=sys.stderr)
            return 1
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    kubeconfig, namespace, action, release = argv[1:5]
    chart = argv[5] if len(argv) > 5 else ""
    values = json.loads(argv[6]) if len(argv) > 6 else None
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
    try:
        result = asyncio.run(drive(config, action, release, chart, values))
    except HelmError as e:
        print(f"helm {action} failed: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
