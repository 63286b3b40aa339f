"""A fake-GPU device plugin for the local real node: `nvidia.com/gpu` through the kubelet's real v1beta1 API.

The kwok pools fake whole nodes; the real node runs a real kubelet, which learns of GPUs only from a device plugin.
This one registers N fake devices whose ids are the simulated backend's GPU UUIDs, so the scheduler counts the GPUs,
the kubelet allocates specific ones to containers, and PodResources reports them to the node agent: every step after
the hardware is the real one.

Modules: `messages` (the v1beta1 messages and their wire codecs), `plugin` (the DevicePlugin service), `kubelet`
(registration and re-registration after kubelet restarts), `launch` (argv / subprocess for the cluster code),
`__main__` (the command: `python -m e2e.deviceplugin --device-plugin-dir DIR --count N --product P [--node NAME]`).
"""

from e2e.deviceplugin.launch import plugin_argv, start_plugin

__all__ = ["plugin_argv", "start_plugin"]
