import pytest

from arch_search import PROJECTIONS, ArchSpec
from tests.conftest import tiny_spec


def test_presets_have_the_papers_dims_and_groups():
    bert, sq, mini = (ArchSpec.preset(n) for n in ("bert_base", "squeezebert", "minilm_l6"))
    assert (bert.hidden, bert.layers, bert.heads, bert.intermediate) == (768, 12, 12, 3072)
    assert bert.is_dense and bert.uniform_groups() == dict.fromkeys(PROJECTIONS, 1)
    assert sq.uniform_groups() == {"q": 4, "k": 4, "v": 4, "post_attention": 1, "ffn_in": 4, "ffn_out": 4}
    assert (sq.hidden, sq.layers, sq.intermediate) == (768, 12, 3072)
    assert (mini.hidden, mini.layers, mini.heads, mini.intermediate, mini.vocab) == (384, 6, 12, 1536, 30522)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        ArchSpec.preset("nope")


def test_int_means_all_layers_and_list_means_per_layer():
    s = tiny_spec(groups={"q": 2, "ffn_in": [1, 4]}, shuffle={"ffn_in": [False, True]})
    assert s.groups["q"] == (2, 2) and s.groups["k"] == (1, 1) and s.groups["ffn_in"] == (1, 4)
    assert s.layer(1)["ffn_in"] == (4, True) and s.layer(0)["ffn_in"] == (1, False)
    assert s.uniform_groups() is None and s.uses_shuffle and not s.is_dense


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"groups": {"q": [1, 3]}}, r"layer 1: projection 'q' groups=3 does not divide in_channels=32 and out_channels=32"),
        ({"groups": {"ffn_out": 5}}, r"layer 0: projection 'ffn_out' groups=5 does not divide in_channels=64 and out_channels=32"),
        ({"heads": 5}, r"heads=5 do not divide hidden=32"),
        ({"groups": {"q": [1, 2, 4]}}, r"3 values for 2 layers"),
        ({"groups": {"query": 2}}, r"unknown projection"),
        ({"groups": {"q": 0}}, r"groups=0"),
        ({"act": "swish"}, r"act must be one of"),
    ],
)
def test_invalid_specs_raise_naming_layer_projection_and_sizes(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_spec(**changes)


def test_groups_may_cut_across_heads():
    # 12 heads of 64 channels; g=8 and g=16 split heads between groups, as HF's SqueezeBERT allows
    s = ArchSpec.preset("bert_base").replace(groups={"q": 8, "k": 16, "v": 16, "ffn_in": 16})
    assert s.groups["k"] == (16,) * 12


def test_yaml_and_dict_round_trip_and_hash():
    s = tiny_spec(groups={"q": [2, 4], "v": 8}, shuffle={"v": True})
    assert ArchSpec.from_yaml(s.to_yaml()) == s
    assert ArchSpec.from_dict(s.to_dict()) == s
    assert s.to_dict()["groups"]["q"] == [2, 4] and s.to_dict()["groups"]["v"] == 8
    assert ArchSpec.from_yaml(s.to_yaml()).hash == s.hash and hash(s) == hash(ArchSpec.from_dict(s.to_dict()))
    assert tiny_spec(groups={"q": [4, 2], "v": 8}, shuffle={"v": True}).hash != s.hash
    # an int and the same value repeated per layer are the same design
    assert tiny_spec(groups={"q": 2}).hash == tiny_spec(groups={"q": [2, 2]}).hash


def test_hash_is_stable_across_versions():
    # pinned: a changed hash would orphan every cached trial; change it only on purpose
    assert ArchSpec.preset("squeezebert").hash == "38fd2e5dabaf"
    assert ArchSpec.preset("bert_base").hash != ArchSpec.preset("squeezebert").hash


def test_a_shuffle_after_a_dense_projection_does_not_change_the_hash():
    design = dict(groups={"q": 2, "ffn_in": [1, 4]})
    plain = tiny_spec(**design)
    # groups == 1: the shuffle is a no-op, the design the same
    assert tiny_spec(**design, shuffle={"k": True, "ffn_in": [True, False]}).hash == plain.hash
    assert ArchSpec.preset("bert_base").replace(shuffle=True).hash == ArchSpec.preset("bert_base").hash
    # groups > 1: another design
    assert tiny_spec(**design, shuffle={"q": True}).hash != plain.hash
    assert tiny_spec(**design, shuffle={"ffn_in": [False, True]}).hash != plain.hash
    # pinned: designs without a no-op shuffle keep the hashes they had before hashes were canonical
    assert ArchSpec.preset("bert_base").hash == "8cad94ddc2a3"
    assert tiny_spec(groups={"q": [2, 4], "v": 8}, shuffle={"v": True}).hash == "024b8a7059a4"


def test_the_shuffle_rule_is_stated_once_and_every_reader_sees_it_acting():
    import re

    from arch_search.design.spec import shuffles
    from tests.conftest import REPO

    assert (shuffles(1, True), shuffles(2, True), shuffles(4, False)) == (False, True, False)
    design = tiny_spec(groups={"q": 2, "ffn_in": [1, 4]}, shuffle={"q": True, "k": True, "ffn_in": [True, True]})
    assert [design.layer(i)["k"] for i in range(design.layers)] == [(1, False)] * design.layers  # dense: no shuffle
    assert design.layer(0)["q"] == (2, True) and [design.layer(i)["ffn_in"] for i in (0, 1)] == [(1, False), (4, True)]
    rule = re.compile(r"\b(shuffle|s|sh)(\[[^]]*\])*\)?\s+and\s+[\w.]+(\[[^]]*\])*\s*>\s*1")  # "shuffle and g > 1" written out
    restated = [(str(path.relative_to(REPO)), line.strip()) for path in sorted((REPO / "arch_search").rglob("*.py"))
                for line in path.read_text().splitlines() if rule.search(line)]
    assert restated == [("arch_search/design/spec.py", "return bool(shuffle) and groups > 1")], restated  # in shuffles()


def test_the_references_are_typed_markers_that_read_as_the_strings_studies_hold():
    import csv
    import io
    import json
    import re

    from arch_search.design.spec import Reference
    from tests.conftest import REPO

    assert Reference.DENSE == "bert_base" and f"{Reference.DENSE}" == str(Reference.DENSE) == "bert_base"
    assert json.dumps({"reference": Reference.SQUEEZEBERT}) == '{"reference": "squeezebert"}'
    assert {Reference.DENSE: 1}["bert_base"] == 1  # a study written with the plain string finds its reference
    out = io.StringIO()
    csv.writer(out).writerow([Reference.DENSE])
    assert out.getvalue().strip() == "bert_base"
    by_string = re.compile(r"""(==|!=|\[|\bin\b)\s*["']bert_base["']""")  # ("squeezebert" is also HF's model_type)
    found = [str(path.relative_to(REPO)) for path in sorted((REPO / "arch_search").rglob("*.py"))
             for line in path.read_text().splitlines() if by_string.search(line)]
    assert found == [], found  # the reference is found by Reference.DENSE, not by its string


def test_the_group_geometry_has_one_definition():
    from arch_search.nn import inherit
    from arch_search.proxies import surgery
    from arch_search.proxies import supernet

    assert surgery.out_groups is inherit.out_groups and surgery.in_groups is inherit.in_groups
    assert supernet.block_mask is inherit.block_mask
    mask = inherit.block_mask(8, 4, 2, True)  # rows o*G + g belong to group g; columns in blocks of C_in/G
    assert mask.tolist() == [[1, 1, 0, 0], [0, 0, 1, 1]] * 4


def test_from_dict_ignores_hydra_keys_and_rejects_unknown_fields(tmp_path):
    d = {"_target_": "arch_search.design.spec.ArchSpec", **tiny_spec().to_dict()}
    assert ArchSpec.from_dict(d) == tiny_spec()
    with pytest.raises(ValueError, match="unknown field"):
        ArchSpec.from_dict({**d, "hiden": 3})
    path = tmp_path / "s.yaml"
    path.write_text(tiny_spec(groups={"q": 2}).to_yaml())
    assert ArchSpec.from_yaml(path) == tiny_spec(groups={"q": 2})


def test_with_scale_keeps_the_pattern():
    sq = ArchSpec.preset("squeezebert")
    proxy = sq.with_scale(hidden=384, layers=6, intermediate=1536)
    assert proxy.uniform_groups() == sq.uniform_groups() and proxy.layers == 6
    assert (proxy.hidden, proxy.intermediate, proxy.heads) == (384, 1536, 12)


def test_with_scale_resamples_per_layer_patterns():
    s = ArchSpec.preset("bert_base").replace(groups={"ffn_in": [1, 2, 4, 8] * 3})
    half = s.with_scale(layers=6)
    assert half.groups["ffn_in"] == (1, 4, 1, 4, 1, 4)  # layer i takes old layer 2i
    with pytest.raises(ValueError, match="groups=8 does not divide"):
        s.with_scale(intermediate=3076)


def test_summary_is_one_line():
    assert ArchSpec.preset("squeezebert").summary() == "768x12 h12 ffn3072 g[q4 k4 v4 post1 in4 out4]"
    assert "in1/4s" in tiny_spec(groups={"ffn_in": [1, 4]}, shuffle=True).summary()


def test_pattern_of_a_shuffled_per_layer_design():
    s = tiny_spec(groups={"q": 4, "post_attention": [1, 2], "ffn_in": [1, 4]},
                  shuffle={"q": True, "post_attention": [True, False], "ffn_in": [False, True], "ffn_out": True})
    # s only where a shuffle follows a grouped layer: not post (its shuffle is on the dense layer 0), not out (dense)
    assert s.pattern() == "q4s k1 v1 post1/2 in1/4s out1"
    assert s.summary() == "32x2 h4 ffn64 g[q4s k1 v1 post1/2 in1/4s out1]"
