"""The four models every question of the speedup times: ours and HF's BERT-base and SqueezeBERT,
HF's built from our specs with BERT's random init and ours loading the same weights back
(``from_hf``); the command line's latency protocol; where a report goes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from arch_search import ArchSpec, build_model, from_hf, to_hf
from arch_search.measure.latency import LatencyProtocol
from experiments import toolkit

HERE = Path(__file__).resolve().parent
PAIRS = {"ours": ("ours BERT-base", "ours SqueezeBERT"), "HF": ("HF BertModel", "HF SqueezeBertModel")}


def latency_protocol(args) -> LatencyProtocol:
    """The command line's latency protocol (torch, fp32, batch 1)."""
    return LatencyProtocol(seq_len=args.seq_len, threads=args.threads, warmup=args.warmup, rounds=args.rounds)


def hf_models(spec_bert: ArchSpec, spec_sq: ArchSpec) -> dict[str, torch.nn.Module]:
    """HF BertModel and SqueezeBertModel of these specs (BERT's random init, seed 0)."""
    torch.manual_seed(0)
    return {
        "HF BertModel": to_hf(build_model(spec_bert)).eval(),
        "HF SqueezeBertModel": to_hf(build_model(spec_sq)).eval(),
    }


def build(layers: int) -> tuple[ArchSpec, ArchSpec, dict[str, torch.nn.Module], dict[str, torch.nn.Module]]:
    """BERT-base's and SqueezeBERT's specs at ``layers`` layers, ours (by name) and HF's (by name),
    ours carrying HF's weights and their specs read back equal."""
    spec_bert, spec_sq = (ArchSpec.preset(p).with_scale(layers=layers) for p in ("bert_base", "squeezebert"))
    hf = hf_models(spec_bert, spec_sq)
    ours = {"ours BERT-base": from_hf(hf["HF BertModel"])[0], "ours SqueezeBERT": from_hf(hf["HF SqueezeBertModel"])[0]}
    for name, hf_name in (("ours BERT-base", "HF BertModel"), ("ours SqueezeBERT", "HF SqueezeBertModel")):
        assert from_hf(hf[hf_name])[1] == (spec_bert if "BERT-base" in name else spec_sq)
    return spec_bert, spec_sq, ours, hf


def token_ids(seq_len: int) -> torch.Tensor:
    """(1, seq_len) token ids for the profile and the parity checks (seed 1)."""
    return torch.randint(0, 30522, (1, seq_len), generator=torch.Generator().manual_seed(1))


def parity(ours, hf, seq_len: int) -> dict[str, float]:
    """Max abs diff of the last hidden state, each of ours vs the HF model whose weights it carries."""
    ids = token_ids(seq_len)
    out = {}
    with torch.inference_mode():
        for name, hf_name in (("ours BERT-base", "HF BertModel"), ("ours SqueezeBERT", "HF SqueezeBertModel")):
            a = ours[name].eval()(ids).last_hidden_state
            b = hf[hf_name](input_ids=ids).last_hidden_state
            out[name] = (a - b).abs().max().item()
    return out


def emit(args, lines: list[str], summary: dict, md: str, js: str) -> None:
    """The report ``lines`` and its ``summary``: written beside this script as ``md`` and ``js``
    (printed under --quick)."""
    if args.quick:
        toolkit.show({md: "\n".join(lines) + "\n", js: json.dumps(summary, indent=1) + "\n"})
        return
    (HERE / md).write_text("\n".join(lines) + "\n")
    (HERE / js).write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {md}, {js} in {HERE}")
