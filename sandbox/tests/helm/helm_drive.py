"""Drive one Helm action with the real Helm library (helm-sdkpy, Helm compiled in) against
the cluster of a kubeconfig. Run by the Helm tier (sandbox/tests/kube_helm.rs), which checks
the outcome with kubectl.

usage: helm_drive.py KUBECONFIG NAMESPACE ACTION RELEASE [CHART] [VALUES_JSON]
  ACTION: install | upgrade | uninstall | status | history

Prints the action's result as one JSON document on stdout; exits 1 with the Helm error on
stderr when the action fails.
"""

import asyncio
import json
import sys

import helm_sdkpy
from helm_sdkpy.exceptions import HelmError

# The emulator runs no workloads (Deployments never become ready), so no action waits for
# readiness; Helm's behaviour under test is what it writes to the API server.
NO_WAIT = False


async def drive(config, action, release, chart, values):
    if action == "install":
        return await helm_sdkpy.Install(config).run(
            release, chart, values=values, wait=NO_WAIT, timeout=120
        )
    if action == "upgrade":
        return await helm_sdkpy.Upgrade(config).run(
            release, chart, values=values, wait=NO_WAIT, timeout=120
        )
    if action == "uninstall":
        # Waiting for deletion is fine: the emulator deletes objects without finalizers at
        # once, and Helm confirms it by reading them back.
        return await helm_sdkpy.Uninstall(config).run(release, wait=True, timeout=120)
    if action == "status":
        return await helm_sdkpy.Status(config).run(release)
    if action == "history":
        return await helm_sdkpy.History(config).run(release)
    raise SystemExit(f"unknown action {action!r}")


def main(argv):
    if len(argv) < 5:
        raise SystemExit(__doc__)
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
