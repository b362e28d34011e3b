"""Kernels confined by real limits: provisioner, backends (cgroup v2, cgroup v1, psutil), watchdog."""

from .base import SandboxUnavailable
from .provisioner import PROVISIONER_NAME, EDAProvisioner, EDAProvisionerFactory, install_factory
from .service import Sandbox

__all__ = [
    "PROVISIONER_NAME",
    "EDAProvisioner",
    "EDAProvisionerFactory",
    "Sandbox",
    "SandboxUnavailable",
    "install_factory",
]
