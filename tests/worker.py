"""A search worker with a slow fake proxy, run as a subprocess by the fault and many-worker
tests (heartbeat grace 60 s: a dead worker's trial is found by its PID, not its heartbeat):
python tests/worker.py SPACE_YAML STORAGE_URL SLEEP_S SEED N_TRIALS STUDY_NAME [CONFIRM_SLEEP_S]
(with CONFIRM_SLEEP_S, the front is confirmed after the search by a slow fake proxy, seeds 0 and 1)."""

import sys
import time

import optuna

from arch_search.measure.latency import LatencyProtocol
from arch_search.proxies import ProxyResult
from arch_search.study.storage import storage_for
from arch_search.study.search import Search
from arch_search.design.space import SearchSpace


class SlowProxy:
    def __init__(self, sleep: float, shift: float = 0.0):
        self.sleep, self.shift = sleep, shift

    def evaluate(self, spec, report=None):
        time.sleep(self.sleep)
        return ProxyResult(score=1.0 / sum(spec.groups["ffn_in"]) + self.shift, metric="accuracy")


if __name__ == "__main__":
    space_path, url, sleep, seed, n_trials, study_name = sys.argv[1:7]
    storage = storage_for(url, heartbeat_interval=1, grace_period=60)
    search = Search(
        SearchSpace.load(space_path), SlowProxy(float(sleep)),
        LatencyProtocol(seq_len=8, rounds=1, warmup=0), study_name,
        storage, optuna.samplers.RandomSampler, seed=int(seed),
    )
    search.run(int(n_trials), progress=False)
    if len(sys.argv) > 7:
        from arch_search.study.confirm import Confirmation

        sleep = float(sys.argv[7])
        confirmation = Confirmation({0: SlowProxy(sleep), 1: SlowProxy(sleep, 0.01)}, storage, study_name, bands=4)
        confirmation.run(search.records(), progress=False)
