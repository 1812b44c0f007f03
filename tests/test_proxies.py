"""Proxies on tiny settings: WNLI (635 train rows), a 2-layer, 32-wide proxy scale."""

import inspect
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from arch_search import ArchSpec, from_hf
from arch_search.proxies import (CompressedProxy, FinetuneProxy, ProxyDiverged, ProxyResult, ProxySetup, SupernetProxy,
                                  ZeroCostProxy)
from arch_search.proxies.teacher import TaskTeacher
from arch_search.resources import conf_dir
from arch_search.study.fingerprint import RUN_SETTINGS
from tests.conftest import SHARED

TINY = {"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}
SQUEEZE = ArchSpec.preset("squeezebert")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return ProxySetup(
        task="wnli", init="scratch", scale=TINY, max_len=32, heldout=100, vocab_size=400,
        data_dir=str(SHARED / "glue"), cache_dir=str(tmp_path_factory.mktemp("cache")),
    )


def tiny_finetune(setup, **kw):
    return FinetuneProxy(setup, **{"steps": 4, "lr": 1e-4, "batch_size": 8, "eval_every": 2, "threads": 1, "progress": False,
                                   **kw})


@pytest.mark.shared
def test_setup_splits_train_into_train_and_heldout(scratch):
    data = scratch.data
    assert (len(data.train), len(data.heldout), len(data.dev)) == (535, 100, 71)
    assert scratch.proxy_spec(SQUEEZE).hidden == 32 and scratch.proxy_spec(SQUEEZE).groups["q"] == (4, 4)
    assert scratch.proxy_spec(SQUEEZE).vocab == data.tokenizer.get_vocab_size() <= 400


@pytest.mark.shared
def test_finetune_is_deterministic_and_reports(scratch):
    reports = []
    a = tiny_finetune(scratch).evaluate(SQUEEZE, report=lambda step, value: reports.append((step, value)))
    b = tiny_finetune(scratch).evaluate(SQUEEZE)
    assert isinstance(a, ProxyResult) and a.metric == "accuracy" and 0 <= a.score <= 1
    assert (a.score, a.dev) == (b.score, b.dev) and set(a.dev) == {"accuracy"}
    assert [s for s, _ in reports] == [2] and a.details["history"] == reports
    assert a.details["heldout"]["accuracy"] == a.score


@pytest.mark.shared
def test_nothing_held_out_trains_on_all_of_train_and_reports_dev(scratch, tmp_path):
    setup = ProxySetup(
        task="wnli", init="scratch", scale=TINY, max_len=32, heldout=0, vocab_size=400,
        data_dir=str(SHARED / "glue"), cache_dir=str(tmp_path),
    )
    assert (len(setup.data.train), len(setup.data.heldout), len(setup.data.dev)) == (635, 0, 71)
    r = tiny_finetune(setup).evaluate(SQUEEZE)  # eval_every=2 < steps: no held-out rows to score mid-run
    assert math.isnan(r.score) and r.details["history"] == [] and r.details["heldout"] == {}
    assert set(r.dev) == {"accuracy"} and 0 <= r.dev["accuracy"] <= 1


@pytest.mark.shared
def test_report_can_stop_training(scratch):
    class Pruned(Exception):
        pass

    def prune(step, value):
        raise Pruned

    with pytest.raises(Pruned):
        tiny_finetune(scratch).evaluate(SQUEEZE, report=prune)


@pytest.mark.shared
def test_diverging_training_raises(scratch):
    with pytest.raises(ProxyDiverged, match="non-finite loss"):
        tiny_finetune(scratch, lr=float("inf"), steps=3).evaluate(SQUEEZE)


@pytest.mark.shared
def test_pretrained_dense_design_starts_as_the_checkpoint(minilm_dir):
    setup = ProxySetup(task="wnli", init="pretrained", checkpoint=str(minilm_dir), data_dir=str(SHARED / "glue"), heldout=100)
    model = setup.build(ArchSpec.preset("bert_base"))  # dense pattern at the checkpoint's dims
    dense, _ = from_hf(minilm_dir)
    ids = torch.randint(0, 30000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).last_hidden_state, dense.eval()(ids).last_hidden_state)
    assert setup.proxy_spec(SQUEEZE).groups["ffn_in"] == (4,) * 6
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        ProxySetup(init="pretrained", checkpoint=str(minilm_dir), scale={"hidden": 768}).proxy_spec(SQUEEZE)


@pytest.mark.shared
def test_zero_cost_scores(scratch):
    proxy = ZeroCostProxy(scratch, score="synflow", batch_size=16, threads=1)
    a, b = proxy.evaluate(SQUEEZE), proxy.evaluate(SQUEEZE)
    assert a.metric == "synflow" and a.score == a.details["scores"]["synflow"] == b.score
    assert set(a.details["scores"]) == {"grad_norm", "snip", "synflow", "params"}
    assert all(math.isfinite(v) for v in a.details["scores"].values())
    dense = proxy.evaluate(ArchSpec.preset("bert_base"))
    assert dense.details["scores"]["params"] > a.details["scores"]["params"]
    with pytest.raises(ValueError, match="score must be one of"):
        ZeroCostProxy(scratch, score="accuracy")


PROXIES = [pytest.param(n, marks=pytest.mark.slow) if n in ("supernet", "compressed") else n  # train a supernet / a teacher
           for n in sorted(p.stem for p in (conf_dir() / "proxy").glob("*.yaml"))]


@pytest.mark.parametrize("name", PROXIES)
@pytest.mark.shared
def test_every_proxy_config_scores_a_design(name, tmp_path, minilm_dir):
    overrides = [f"proxy={name}", "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.heldout=100",
                 "proxy_setup.max_len=32", f"cache_dir={tmp_path}", "proxy.threads=1"]
    if name == "compressed":  # compresses a pretrained checkpoint, at its dims
        overrides += [f"proxy_setup.checkpoint={minilm_dir}", "proxy.teacher_steps=2", "proxy.calibration=8",
                      "proxy.distill_steps=1", "proxy.steps=1", "proxy.batch_size=8", "proxy.eval_dev=false",
                      "proxy.progress=false"]
    elif name == "supernet":  # distils the checkpoint's task teacher, at its dims
        overrides += [f"proxy_setup.checkpoint={minilm_dir}", "proxy.teacher_steps=2", "proxy.steps=2",
                      "proxy.batch_size=8", "proxy.eval_dev=false", "proxy.progress=false"]
    else:
        overrides += ["proxy_setup.init=scratch", "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}",
                      "proxy_setup.vocab_size=400"]
    overrides += {"finetune": ["proxy.steps=2", "proxy.progress=false"], "zero_cost": ["proxy.batch_size=8"]}.get(name, [])
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    result = instantiate(cfg.proxy).evaluate(SQUEEZE)
    assert isinstance(result, ProxyResult) and math.isfinite(result.score)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, minilm_dir):
    return ProxySetup(task="wnli", init="pretrained", checkpoint=str(minilm_dir), max_len=24, heldout=60,
                      data_dir=str(SHARED / "glue"), cache_dir=str(tmp_path_factory.mktemp("cache")))


def tiny_compressed(setup, **kw):
    from arch_search.proxies import CompressedProxy

    return CompressedProxy(setup, **{"teacher_steps": 2, "calibration": 16, "distill_steps": 2, "steps": 2,
                                     "batch_size": 8, "threads": 1, "progress": False, "eval_dev": False, **kw})


@pytest.mark.slow
@pytest.mark.shared
def test_compressed_proxy_scores_paired_and_caches_its_teacher(pretrained):
    proxy = tiny_compressed(pretrained)
    a = proxy.evaluate(SQUEEZE)
    assert a.metric == "log_likelihood" and a.score < 0 and 0 <= a.details["heldout"]["accuracy"] <= 1
    assert set(a.details["seconds"]) == {"permute", "refit", "distill", "finetune"}
    assert proxy.task_teacher.path.is_file()
    again = tiny_compressed(pretrained)  # a new proxy (another worker): the cached teacher, the same score
    assert again.evaluate(SQUEEZE).score == a.score
    for name, p in again.teacher.state_dict().items():
        assert torch.equal(p, proxy.teacher.state_dict()[name]), name
    naive = tiny_compressed(pretrained, permute=False, refit=False, distill_steps=0).evaluate(SQUEEZE)
    assert naive.score != a.score and naive.details["seconds"]["refit"] == 0.0
    dense = tiny_compressed(pretrained, score="metric").evaluate(ArchSpec.preset("bert_base"))
    assert dense.metric == "accuracy" and dense.score == dense.details["heldout"]["accuracy"]
    from arch_search.tasks.training import gold_log_likelihood

    teacher = proxy.teacher_result()  # the teacher itself, no fine-tune: dense before the proxy heals it
    data = pretrained.data
    assert teacher.metric == "log_likelihood" and teacher.score == gold_log_likelihood(proxy.teacher, data.heldout, data.task)
    assert 0 <= teacher.dev["accuracy"] <= 1 and teacher.score != proxy.evaluate(ArchSpec.preset("bert_base")).score
    as_metric = tiny_compressed(pretrained, score="metric").teacher_result()
    assert as_metric.metric == "accuracy" and as_metric.score == as_metric.details["heldout"]["accuracy"]


@pytest.mark.slow
@pytest.mark.shared
def test_compressed_proxy_runs_the_teacher_for_the_fine_tune_once(pretrained):
    """The fine-tune's teacher logits are computed once per proxy (the batches are the same for
    every design of a seed) and equal a design's permuted teacher's on those batches, which is
    what each step computed before."""
    from arch_search.measure.runtime import to_device
    from arch_search.proxies.surgery import permuted

    proxy = tiny_compressed(pretrained, steps=3)
    calls = []
    hook = proxy.teacher.register_forward_hook(lambda *_: calls.append(1))
    dense = ArchSpec.preset("bert_base")
    first = proxy.evaluate(dense)
    assert len(calls) == 3  # the 3 fine-tune batches, once (a dense design is neither refitted nor distilled)
    assert proxy.evaluate(dense).score == first.score and len(calls) == 3  # reused: the same score, no new pass
    hook.remove()
    batches, twin = proxy.finetune.batches(), permuted(proxy.teacher, pretrained.proxy_spec(SQUEEZE)).eval()
    for logits in proxy.teacher_logits():
        b = to_device(next(batches), logits.device)
        with torch.no_grad():
            assert torch.allclose(twin(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits, logits, atol=1e-4)


@pytest.mark.slow
@pytest.mark.shared
def test_compressed_proxy_model_exports_as_the_deployable_model(pretrained, tmp_path):
    """What `export` writes for a front trial is the proxy's model: the permuted, healed,
    fine-tuned student. At the checkpoint's scale that is the deployable model: HF's
    SqueezeBERT loaded from the export predicts the held-out rows as the proxy scored them."""
    import transformers as tf

    from arch_search.app.export import export_hf
    from arch_search.tasks.tokenizer import eval_batches

    result = tiny_compressed(pretrained, score="metric").evaluate(SQUEEZE)
    export_hf(result.model, tmp_path)
    hf = tf.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert hf.config.model_type == "squeezebert" and hf.config.hidden_size == 384  # the checkpoint's scale
    heldout, correct, worst = pretrained.data.heldout, 0, 0.0
    with torch.inference_mode():
        for _, b in eval_batches(heldout, 16):
            ours = result.model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
            theirs = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"]).logits
            worst = max(worst, (ours - theirs).abs().max().item())
            correct += (theirs.argmax(-1) == b["labels"]).sum().item()
    assert worst <= 1e-4
    assert correct / len(heldout) == result.score == result.details["heldout"]["accuracy"]


def compose_run(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="run", overrides=["proxy_setup.checkpoint=elsewhere/all-MiniLM-L6-v2", *overrides])


@pytest.mark.parametrize("task, key", [("sst2", "03baa617e0548437"), ("cola", "e2d09fa08364db47"),
                                       ("mrpc", "565904aae1c1b2ae"), ("stsb", "e4e4547a83f47182")])
def test_the_task_teachers_cache_key_is_pinned(task, key):
    """Cached teachers and experiments/glue_tasks/teachers.csv are named by it: the default
    config's key (the checkpoint by its folder name), as the lessons compose it, stays."""
    cfg = compose_run("proxy=compressed", "proxy_setup.seed=0", "seed=0", "~confirm", f"task={task}")
    assert instantiate(cfg.proxy).task_teacher.key() == key




@pytest.mark.parametrize("cls", [FinetuneProxy, CompressedProxy, SupernetProxy, ZeroCostProxy, ProxySetup, TaskTeacher])
def test_each_setting_is_declared_scored_or_changes_only_how_it_runs(cls):
    """The study fingerprint and the cache keys come from each class's ``SCORED``: a new
    constructor setting is declared there, or is one of ``RUN_SETTINGS``."""
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert set(cls.SCORED) <= params and params - set(cls.SCORED) <= RUN_SETTINGS, params - set(cls.SCORED)


def test_the_teachers_key_moves_with_each_setting_it_declares_and_no_other():
    """``TaskTeacher.key`` holds its own ``SCORED`` and the setup's but init, scale and vocab_size."""
    def key(teacher=None, **setup):
        setup = ProxySetup(**{"task": "sst2", "init": "pretrained", "checkpoint": "models/minilm", **setup})
        return TaskTeacher(setup, **(teacher or {})).key()

    moves = {"steps": {"teacher": {"steps": 10}}, "lr": {"teacher": {"lr": 1e-4}},
             "batch_size": {"teacher": {"batch_size": 8}}, "task": {"task": "cola"},
             "checkpoint": {"checkpoint": "models/other"}, "max_len": {"max_len": 32}, "heldout": {"heldout": 100},
             "heldout_disjoint": {"heldout_disjoint": False}, "dropout": {"dropout": 0.0}, "seed": {"seed": 1}}
    assert set(moves) == {*TaskTeacher.SCORED, *TaskTeacher.SETUP_SCORED}
    assert all(key(**kw) != key() for kw in moves.values())
    stays = [{"checkpoint": "elsewhere/minilm"}, {"scale": {"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}},
             {"vocab_size": 400}, {"cache_dir": "c"}, {"data_dir": "d"}, {"device": "cpu"}, {"bf16": False},
             {"teacher": {"threads": 1, "progress": False}}]
    assert all(key(**kw) == key() for kw in stays)


def test_compressed_proxy_needs_a_pretrained_setup(scratch):
    with pytest.raises(ValueError, match="proxy_setup=pretrained"):
        tiny_compressed(scratch)


@pytest.mark.parametrize("make, message", [
    (lambda s: FinetuneProxy(s, steps=0, lr=1e-4, eval_every=1), "proxy.steps must be an integer >= 1, got 0"),
    (lambda s: FinetuneProxy(s, steps=2, lr=1e-4, eval_every=1, batch_size=0), "proxy.batch_size must be an integer >= 1"),
    (lambda s: FinetuneProxy(s, steps=2, lr=1e-4, eval_every=1, threads=0), "proxy.threads must be an integer >= 1"),
    (lambda s: ZeroCostProxy(s, batch_size=1.5), "proxy.batch_size must be an integer >= 1, got 1.5"),
    (lambda s: ProxySetup(task="sst2", init="scratch", max_len=1), "proxy_setup.max_len must be an integer >= 2, got 1"),
    (lambda s: ProxySetup(task="sst2", init="scratch", heldout=-1), "proxy_setup.heldout must be an integer >= 0, got -1"),
])
def test_a_proxy_checks_its_own_counts_when_built(make, message):
    """The constructor that owns a number checks it, naming the config key (the CLI prints it
    as its one error line); nothing is loaded first (the setup's data is lazy)."""
    setup = ProxySetup(task="sst2", init="scratch", data_dir="/nonexistent")
    with pytest.raises(ValueError, match=message):
        make(setup)
