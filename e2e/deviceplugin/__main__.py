"""`python -m e2e.deviceplugin`: serve N fake GPUs to the kubelet until SIGTERM or SIGINT, logging to stderr.

Exit status: 0 after a signal (socket removed), 1 when the kubelet refuses the registration, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

from e2e.deviceplugin.kubelet import PluginConfig, RegistrationRefused, run
from e2e.deviceplugin.plugin import fake_device_ids
from llmasos.agent.curves import load_product

log = logging.getLogger("e2e.deviceplugin")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m e2e.deviceplugin", description=__doc__)
    p.add_argument("--device-plugin-dir", type=Path, required=True,
                   help="the kubelet's device-plugins directory (holds kubelet.sock)")
    p.add_argument("--count", type=int, required=True, help="number of fake GPUs")
    p.add_argument("--product", required=True, help="GPU product (as the node label / the agent's --sim-product)")
    p.add_argument("--node", default=socket.gethostname().lower(),
                   help="node name, as the agent's --node-name (default: the host name, as the kubelet's)")
    p.add_argument("--seed", type=int, default=0, help="as the agent's --sim-seed")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    try:
        args.product_name = load_product(args.product).nvml_name
    except KeyError as exc:
        p.error(str(exc.args[0]))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ids = fake_device_ids(args.count, args.node, args.seed)
    log.info("%d x %s on node %s: %s", args.count, args.product_name, args.node, ", ".join(ids))
    try:
        run(PluginConfig(args.device_plugin_dir, ids), stop)
    except RegistrationRefused as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
