"""Accuracy proxies: cheap scores of a design that rank designs as full training would.

Each proxy has ``evaluate(spec, report=None) -> ProxyResult`` (``Proxy`` protocol) and shares
a ``ProxySetup`` (task data, proxy scale, init)."""

from arch_search.proxies.base import Proxy, ProxyDiverged, ProxyResult, ProxySetup, TaskData, kendall_tau
from arch_search.proxies.compressed import CompressedProxy
from arch_search.proxies.finetune import FinetuneProxy
from arch_search.proxies.supernet import Supernet, SupernetProxy
from arch_search.proxies.zero_cost import ZeroCostProxy

__all__ = ["CompressedProxy", "FinetuneProxy", "Proxy", "ProxyDiverged", "ProxyResult", "ProxySetup", "Supernet", "SupernetProxy", "TaskData", "ZeroCostProxy", "kendall_tau"]
