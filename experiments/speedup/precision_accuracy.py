"""``--precision``'s second question: what does each lower precision do to a fine-tuned SST-2
classifier? The dense MiniLM-L6 and its SqueezeBERT pattern fine-tuned per seed, then SST-2 dev
classified at each precision, paired with fp32 on the same sentences (McNemar's standard error)."""

from __future__ import annotations

import math
import statistics
import tempfile

import numpy as np
from arch_search import ArchSpec
from experiments import toolkit

PRECISION_CELLS = (("bf16", False), ("int8", False), ("int8", True))  # (precision, static) against fp32
ACCURACY_SEEDS = (0, 1)  # fine-tuning seeds of the precision accuracy check


def accuracy(args) -> dict:
    """Fine-tune the dense and SqueezeBERT-pattern MiniLM-L6 on SST-2 (per seed), then classify
    SST-2 dev at each precision: accuracy, agreement with fp32, and the paired difference."""
    from arch_search.measure.precision import output_error, precision_outputs
    from arch_search.proxies import FinetuneProxy, ProxySetup
    from arch_search.tasks.tokenizer import Encoded, eval_batches

    checkpoint, glue = toolkit.checkpoint(), toolkit.glue_dir()
    from omegaconf import OmegaConf

    from arch_search.resources import conf_dir

    recipe = OmegaConf.load(conf_dir() / "proxy" / "finetune.yaml")  # the finetune proxy's budget and optimiser
    steps, seeds, calibration_rows = (4, (0,), 32) if args.quick else (int(recipe.steps), ACCURACY_SEEDS, 256)
    setup = ProxySetup("sst2", init="pretrained", checkpoint=checkpoint, data_dir=glue, heldout=0)
    dev, train = setup.data.dev, setup.data.train
    if args.quick:
        dev = Encoded(dev.input_ids[:48], dev.token_type_ids[:48], dev.labels[:48])
    batches = [(rows, {k: b[k] for k in ("input_ids", "attention_mask")}) for rows, b in eval_batches(dev, 64)]
    every = list(eval_batches(train, 32))  # by length: take batches spread over all lengths
    stride = max(1, len(every) // (calibration_rows // 32))
    calibration = [b for _, b in every[::stride][: calibration_rows // 32]]
    labels = np.asarray(dev.labels)
    masks = [b["attention_mask"] for _, b in batches]
    out = {"steps": steps, "seeds": list(seeds), "dev_rows": len(dev), "calibration_rows": 32 * len(calibration),
           "rows": []}
    designs = {"dense": ArchSpec.preset("bert_base"), "SqueezeBERT pattern": ArchSpec.preset("squeezebert")}
    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        for name, spec in designs.items():
            for seed in seeds:
                model = setup.build(spec, seed=seed)
                FinetuneProxy(setup, steps=steps, lr=recipe.lr, eval_every=steps, batch_size=recipe.batch_size,
                              warmup=recipe.warmup, weight_decay=recipe.weight_decay, threads=recipe.threads,
                              seed=seed, progress=False).train(model)
                model.eval()
                ref = precision_outputs(model, [b for _, b in batches], "fp32", tmp)
                base = predictions(ref, batches, len(dev))
                for precision, static in PRECISION_CELLS:
                    low = precision_outputs(model, [b for _, b in batches], precision, tmp,
                                            calibration if static else None)
                    pred = predictions(low, batches, len(dev))
                    out["rows"].append({"model": name, "seed": seed, "precision": precision + (" static" if static else ""),
                                        **paired(base, pred, labels), "rel_l2": round(output_error(ref, low, masks)["rel_l2"], 4)})
    return out


def predictions(outputs, batches, n: int) -> np.ndarray:
    """Class ids of every dev row from ``precision_outputs`` over ``batches`` ((rows, batch) pairs)."""
    pred = np.full(n, -1)
    for out, (rows, _) in zip(outputs, batches):
        pred[rows] = out["logits"].argmax(-1)
    assert (pred >= 0).all()
    return pred


def paired(base: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of ``pred`` vs ``base`` (fp32) on the same rows: agreement, flips each way, the
    accuracy difference and its standard error (McNemar: from the discordant rows)."""
    n = len(labels)
    right0, right1 = base == labels, pred == labels
    lost, gained = int((right0 & ~right1).sum()), int((~right0 & right1).sum())
    diff = (gained - lost) / n
    se = math.sqrt(max(0.0, lost + gained - (gained - lost) ** 2 / n)) / n
    return {"accuracy": round(float(right1.mean()), 4), "fp32_accuracy": round(float(right0.mean()), 4),
            "agreement": round(float((base == pred).mean()), 4), "flips_lost": lost, "flips_gained": gained,
            "diff": round(diff, 4), "se": round(se, 4), "significant": bool(abs(diff) > 2 * se)}


def summary_lines(a: dict) -> list[str]:
    """fp32 accuracy per model over seeds (mean, seed sd), and per precision the mean agreement
    and mean paired difference, and how many seeds tell it apart from zero."""
    lines = ["| model | fp32 dev acc % (mean +/- seed sd) | precision | mean agreement % | mean diff (pts) | seeds with |diff| > 2 SE |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for model in dict.fromkeys(r["model"] for r in a["rows"]):
        mine = [r for r in a["rows"] if r["model"] == model]
        fp32 = list({r["seed"]: r["fp32_accuracy"] for r in mine}.values())  # one per seed
        sd = statistics.stdev(fp32) if len(fp32) > 1 else float("nan")
        for precision in dict.fromkeys(r["precision"] for r in mine):
            rs = [r for r in mine if r["precision"] == precision]
            lines.append(f"| {model} | {100 * statistics.mean(fp32):.2f} +/- {100 * sd:.2f} | {precision} | "
                         f"{100 * statistics.mean(r['agreement'] for r in rs):.2f} | "
                         f"{100 * statistics.mean(r['diff'] for r in rs):+.2f} | {sum(r['significant'] for r in rs)} / {len(rs)} |")
    return lines
