"""Accuracy proxies: cheap scores of a design that rank designs as full training would.

Each proxy has ``evaluate(spec, report: OnProgress | None = None) -> ProxyResult`` (``Proxy`` protocol) and shares
a ``ProxySetup`` (task data, proxy scale, init)."""

from arch_search.proxies.base import OnProgress, Proxy, ProxyDiverged, ProxyResult
from arch_search.proxies.setup import ProxySetup, TaskData
from arch_search.proxies.compressed import CompressedProxy
from arch_search.proxies.finetune import FinetuneProxy
from arch_search.proxies.supernet import Supernet, SupernetProxy
from arch_search.proxies.zero_cost import ZeroCostProxy

__all__ = ["CompressedProxy", "FinetuneProxy", "OnProgress", "Proxy", "ProxyDiverged", "ProxyResult", "ProxySetup", "Supernet", "SupernetProxy", "TaskData", "ZeroCostProxy"]
