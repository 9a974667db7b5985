"""Drive one Helm action with the real Helm library (helm-sdkpy, Helm compiled in) against
the cluster of a kubeconfig. Run by the Helm tier (sandbox/tests/kube_helm.rs), which checks
the outcome with kubectl.

usage: helm_drive.py [--server-side] KUBECONFIG NAMESPACE ACTION RELEASE [CHART] [VALUES_JSON]
  ACTION: install | upgrade | uninstall | status | history
  --server-side: install with server-side apply (an upgrade keeps the release's method)

Prints the action's result as one JSON document on stdout; exits 1 with the Helm error on
stderr when the action fails.
"""

import argparse
import asyncio
import json
import sys

import helm_sdkpy
from helm_sdkpy.exceptions import HelmError

# The emulator runs no workloads (Deployments never become ready), so no action waits for
# readiness; Helm's behaviour under test is what it writes to the API server.
NO_WAIT = False


async def drive(config, action, release, chart, values, server_side):
    if action == "install":
        return await helm_sdkpy.Install(config).run(
            release, chart, values=values, wait=NO_WAIT, timeout=120, server_side_apply=server_side
        )
    if action == "upgrade":
        # "auto": keep the apply method the release was installed with, as the helm CLI does.
        return await helm_sdkpy.Upgrade(config).run(
            release, chart, values=values, wait=NO_WAIT, timeout=120, server_side_apply="auto"
        )
    if action == "uninstall":
        # Waiting for deletion is fine: the emulator deletes objects without finalizers at
        # once, and Helm confirms it by reading them back.
        return await helm_sdkpy.Uninstall(config).run(release, wait=True, timeout=120)
    if action == "status":
        return await helm_sdkpy.Status(config).run(release)
    if action == "history":
        return await helm_sdkpy.History(config).run(release)
    raise ValueError(f"unknown action {action!r}")


def main(argv):
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--server-side", action="store_true")
    parser.add_argument("kubeconfig")
    parser.add_argument("namespace")
    parser.add_argument("action", choices=["install", "upgrade", "uninstall", "status", "history"])
    parser.add_argument("release")
    parser.add_argument("chart", nargs="?", default="")
    parser.add_argument("values", nargs="?", type=json.loads, default=None)
    args = parser.parse_args(argv[1:])
    action = args.action
    config = helm_sdkpy.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)
    try:
        result = asyncio.run(
            drive(config, action, args.release, args.chart, args.values, args.server_side)
        )
    except HelmError as e:
        print(f"helm {action} failed: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
