"""Bad study files: exit code 2, one message naming the field path and the value, nothing in mlruns/."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evolora.orchestrator.cli.commands import main
from evolora.orchestrator.study.load import load_study
from evolora.orchestrator.study.sections import resolved

from ..conftest import tiny_study

BAD = [
    ({"bogus": 1}, [], "bogus", "1"),
    ({"evolution__colour": "red"}, [], "evolution.colour", "red"),
    ({"evolution__population": "many"}, [], "evolution.population", "many"),
    ({"evolution__population": -4}, [], "evolution.population", "-4"),
    ({"evolution__mutation_sigma": 0}, [], "evolution.mutation_sigma", "0"),
    ({"evolution__mutation_sigma": -0.1}, [], "evolution.mutation_sigma", "-0.1"),
    ({"evolution__crossover_prob": 1.5}, [], "evolution.crossover_prob", "1.5"),
    ({"fitness__terms": [{"name": "bleu"}]}, [], "fitness.terms.0.name", "bleu"),
    ({"validation__metric": "accuracy"}, [], "validation.metric", "accuracy"),
    ({"data__train_path": "nowhere/train.csv"}, [], "data.train_path", "nowhere/train.csv"),
    ({"lora__rank": 0}, [], "lora.rank", "0"),
    (
        {"lora__blocks": {"attention": {"enabled": True}}},
        [],
        "lora.blocks",
        "['attention']",
    ),  # encoders: no blocks
    ({"lora__layers": [9]}, [], "lora.layers", "[9]"),
    ({"lora__target_modules": ["q_proj"]}, [], "lora.target_modules", "q_proj"),
    ({"evolution__tournament_size": 9}, [], "evolution.tournament_size", "9"),
    ({"evolution__elitism": 4}, [], "evolution.elitism", "4"),
    ({"model__base": "/no/such/model"}, [], "model.base", "/no/such/model"),
    ({"lora__genome": "tiny"}, [], "lora.genome", "tiny"),
    ({"lora__init": "pca"}, [], "lora.init", "pca"),
    ({"lora__init_examples": 0}, [], "lora.init_examples", "0"),
    ({"lora__genome": "xs", "lora__init": "eva"}, [], "lora.init", "eva"),
    ({"lora__a_subspace": 16}, [], "lora.a_subspace", "16"),  # needs the eva directions
    (
        {"lora__init": "eva", "lora__rank": 4, "lora__a_subspace": 2},
        [],
        "lora.a_subspace",
        "2",
    ),  # below the rank
    (
        {"lora__init": "eva", "lora__a_subspace": 500},
        [],
        "lora.a_subspace",
        "500",
    ),  # wider than MiniLM's 384 inputs
    ({"lora__rank": 4, "lora__b_subspace": 2}, [], "lora.b_subspace", "2"),  # below the rank
    (
        {"lora__b_subspace": 500},
        [],
        "lora.b_subspace",
        "500",
    ),  # wider than MiniLM's 384 value channels
    (
        {"lora__target_modules": ["query"], "lora__b_subspace": 16},
        [],
        "lora.b_subspace",
        "16",
    ),  # no value projection
    ({"lora__genome": "xs", "lora__b_subspace": 16}, [], "lora.b_subspace", "16"),
    (
        {
            "lora__genome": "xs",
            "evolution__strategy": "openai-es",
            "evolution__es": {"perturb": "B"},
        },
        [],
        "evolution.es.perturb",
        "B",
    ),
    (
        {
            "lora__genome": "xs",
            "evolution__strategy": "openai-es",
            "evolution__es": {"a_scale": 0.1},
        },
        [],
        "evolution.es.a_scale",
        "0.1",
    ),
    (
        {"evolution__strategy": "openai-es", "evolution__es": {"perturb": "B", "a_scale": 0.1}},
        [],
        "evolution.es.a_scale",
        "0.1",
    ),
    ({"evolution__es": {"a_scale": 1.5}}, [], "evolution.es.a_scale", "1.5"),
    (
        {"lora__genome": "xs", "evolution__speciation": {"enabled": True, "distance": "delta_l2"}},
        [],
        "evolution.speciation.distance",
        "delta_l2",
    ),
    (
        {"evolution__es": {"batches": "per_pair", "shaping": "zscore"}, "data__rotate": True},
        [],
        "evolution.es.batches",
        "per_pair",
    ),  # the default strategy is ga
    (
        {
            "evolution__strategy": "openai-es",
            "evolution__es": {"batches": "per_pair"},
            "data__rotate": True,
        },
        [],
        "evolution.es.batches",
        "per_pair",
    ),  # centred ranks would rank the batches
    (
        {
            "evolution__strategy": "openai-es",
            "evolution__es": {"batches": "per_pair", "shaping": "zscore"},
        },
        [],
        "evolution.es.batches",
        "per_pair",
    ),  # a fixed batch: nothing to draw per pair
    ({"evolution__es": {"batches": "each"}}, [], "evolution.es.batches", "each"),
    (
        {"data__val_sources": ["deft-forum"]},
        [],
        "data.val_sources",
        "deft-forum",
    ),  # needs val_fraction
    (
        {
            "data__dev_path": None,
            "data__val_fraction": 0.1,
            "data__val_sources": ["answers-forums"],
        },
        [],
        "data.val_sources",
        "answers-forums",
    ),  # sts-train holds no such source
    (
        {
            "data__dev_path": None,
            "data__val_fraction": 0.1,
            "data__val_sources": [
                "MSRpar",
                "MSRvid",
                "deft-forum",
                "deft-news",
                "headlines",
                "images",
            ],
        },
        [],
        "data.val_sources",
        "MSRpar",
    ),  # nothing left for fitness
    (
        {
            "model__kind": "causal",
            "model__base": "lfm2-tiny",
            "fitness__terms": [{"name": "likelihood"}],
            "validation__metric": "likelihood",
            "data__dev_path": None,
            "data__val_fraction": 0.1,
            "data__val_sources": ["deft-forum"],
        },
        [],
        "data.val_sources",
        "deft-forum",
    ),
    ({"model__trunk_memo": "often"}, [], "model.trunk_memo", "often"),
    (
        {"model__trunk_memo": True, "lora__layers": [0, 5]},
        [],
        "model.trunk_memo",
        "True",
    ),  # no trunk below layer 0
    (
        {
            "model__trunk_memo": True,
            "model__kind": "causal",
            "model__base": "lfm2-tiny",
            "fitness__terms": [{"name": "likelihood"}],
            "validation__metric": "likelihood",
        },
        [],
        "model.trunk_memo",
        "True",
    ),
    (
        {"validation__budget": [{"metric": "stsb_pearson"}]},
        [],
        "validation.budget",
        "stsb_pearson",
    ),  # no bound
    (
        {"validation__budget": [{"metric": "bleu", "min": 0.5}]},
        [],
        "validation.budget.0.metric",
        "bleu",
    ),
    (
        {"validation__budget": [{"metric": "likelihood", "min": 0.5}]},
        [],
        "validation.budget.0.metric",
        "likelihood",
    ),
    (
        {
            "validation__budget": [
                {"metric": "stsb_pearson", "min": 0.5},
                {"metric": "stsb_pearson", "max_drop": 0.1},
            ]
        },
        [],
        "validation.budget.1.metric",
        "stsb_pearson",
    ),
    (
        {"validation__budget": [{"metric": "stsb_pearson", "max_drop": -0.1}]},
        [],
        "validation.budget.0.max_drop",
        "-0.1",
    ),
    (
        {"validation__budget": [{"metric": "stsb_pearson", "max_drop": float("nan")}]},
        [],
        "validation.budget.0.max_drop",
        "nan",
    ),
    ({"validation__metric": "keyword"}, [], "validation.metric", "keyword"),  # a causal term
    (
        {
            "model__kind": "causal",
            "model__base": "lfm2-tiny",
            "fitness__terms": [{"name": "likelihood"}],
            "validation__metric": "keyword",
        },
        [],
        "validation.params",
        "{}",
    ),  # keyword needs its keywords
    ({"data__format": "xlsx"}, [], "data.format", "xlsx"),
    ({"data__columns": {"sentence": "a"}}, [], "data.columns.sentence", "a"),
    ({"name": ".."}, [], "name", "'..'"),  # a name becomes a directory: never the parent
    ({"name": "x" * 101}, [], "name", "xxxx"),
    ({"mlflow__experiment": "../.."}, [], "mlflow.experiment", "../.."),
    ({"mlflow__registered_model": "a/b"}, [], "mlflow.registered_model", "a/b"),
    ({"seed": 2**64}, [], "seed", str(2**64)),
    ({"evolution__population": 10**9}, [], "evolution.population", str(10**9)),
    (
        {"fitness__terms": [{"name": "stsb_spearman", "weight": float("nan")}]},
        [],
        "fitness.terms.0.weight",
        "nan",
    ),
    ({"lora__alpha": float("inf")}, [], "lora.alpha", "inf"),
    ({}, ["--set", "evolution.mutation_sigma=.nan"], "evolution.mutation_sigma", "nan"),
    (
        {"model__device": "cuda:99"},
        [],
        "model.device",
        "cuda:99",
    ),  # no such device on any machine here
    ({"lora__rank": 1000}, [], "lora.rank", "1000"),  # past MiniLM's 384-wide matrices
    ({"data__max_length": 600}, [], "data.max_length", "600"),  # past MiniLM's 512 positions
    ({}, ["--tracking-uri", "some/dir"], "--tracking-uri", "some/dir"),
    ({}, ["--set", "evolution.generations=-1"], "evolution.generations", "-1"),
    ({}, ["--set", "evolution.nope=3"], "evolution.nope", "3"),
    ({}, ["--set", "novalue"], "--set", "novalue"),
]


@pytest.mark.parametrize("over,extra,path,value", BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_bad_input_exits_2_names_path_and_value_writes_nothing(
    tmp_path, capsys, over, extra, path, value
):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(tiny_study(tmp_path, **over)))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["run", str(study), "--no-progress", *extra])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"evolora: error: {path}:"), err
    assert value in err[0]
    assert not (tmp_path / "mlruns").exists()


def test_not_a_mapping_and_missing_file(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text("- a\n- b\n")
    assert main(["run", str(study)]) == 2
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "a study file must be a YAML mapping" in err and "study file not found" in err


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n"])
def test_an_empty_study_file_is_an_error_not_a_run_of_all_defaults(tmp_path, capsys, text):
    study = tmp_path / "s.yaml"
    study.write_text(text)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["run", str(study), "--no-progress"]) == 2
    finally:
        os.chdir(cwd)
    assert "study file is empty" in capsys.readouterr().err
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    "over,hint",
    [
        ({"evolution__populaton": 8}, "did you mean population?"),
        ({"evolushun": {}}, "did you mean evolution?"),
        ({"evolution__es__sigmaa": 0.1}, "did you mean sigma?"),
        ({"zzzz": 1}, None),
    ],
)
def test_an_unknown_key_suggests_the_nearest_valid_key(tmp_path, capsys, over, hint):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(tmp_path, **over)))
    assert main(["run", str(study), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown key" in err
    assert (hint in err) if hint else ("did you mean" not in err)


def test_overrides_and_seed_are_applied_and_typed(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(tiny_study(tmp_path)))
    cfg = load_study(
        study,
        [
            "evolution.generations=5",
            "data.train_subset=64",
            "lora.layers=[4, 5]",
            "fitness.terms.0.weight=0.5",
        ],
        seed=7,
    )
    assert (cfg.evolution.generations, cfg.data.train_subset, cfg.lora.layers, cfg.seed) == (
        5,
        64,
        [4, 5],
        7,
    )
    assert cfg.fitness.terms[0].weight == 0.5
    r = resolved(cfg)
    assert r["evolution"]["population"] == 4 and Path(r["data"]["train_path"]).is_absolute()


def test_shipped_studies_are_valid():
    root = Path(__file__).resolve().parents[2] / "studies"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"quickstart.yaml", "stsb-minilm.yaml"} <= set(names)
    for p in root.glob("*.yaml"):
        cfg = load_study(p)
        assert Path(cfg.data.train_path).is_file()


def test_help_explains_each_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "run" in out and "export" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--set" in capsys.readouterr().out


def test_each_evolution_setting_is_declared_once_on_the_dataclass_the_strategy_reads():
    """The evolution section's settings are generated from the inner loop's parameter dataclasses (type,
    default, description, bounds declared once, on the dataclass), and the assembly builds the dataclass a
    strategy reads back from the study by name, with the study's values."""
    import dataclasses

    import numpy as np

    from evolora.evolution import STRATEGIES, GAParams, GeneticAlgorithm
    from evolora.evolution.es import ESParams, OpenAIES
    from evolora.evolution.sepcma import SepCMAES
    from evolora.evolution.snes import SNES
    from evolora.evolution.speciation import SpeciationParams
    from evolora.orchestrator.assembly import strategy_factory, strategy_params
    from evolora.orchestrator.study.load import parse_study
    from evolora.orchestrator.study.sections import ESConfig, EvolutionConfig, SpeciationConfig

    for section, cls in (
        (EvolutionConfig, GAParams),
        (ESConfig, ESParams),
        (SpeciationConfig, SpeciationParams),
    ):
        declared = [
            f
            for f in dataclasses.fields(cls)
            if "doc" in f.metadata
            and f.name != "horizon"
            and not (cls is ESParams and f.name == "population")
        ]
        assert declared, section
        for f in declared:
            info = section.model_fields[f.name]
            assert info.default == f.default and (info.description or "") == f.metadata["doc"], (
                f.name
            )
            bounds = {
                k: getattr(m, k)
                for m in info.metadata
                for k in ("gt", "ge", "lt", "le")
                if hasattr(m, k)
            }
            assert bounds == {
                k: f.metadata[k] for k in ("gt", "ge", "lt", "le") if k in f.metadata
            }, f.name

    # evolora's own, then what installed packages add (the example plug-in's cem, the bench's EvoTorch peers),
    # none imported to list them: in a fresh process (here another test may have run a plug-in already)
    own = ["ga", "openai-es", "sep-cma-es", "snes"]
    listed = subprocess.run(
        [sys.executable, "-c", "import json; from evolora.orchestrator.study.sections import EvolutionConfig as E; "
         "from evolora.evolution.strategies import STRATEGIES as S, strategy_names as n; "
         "print(json.dumps([E.model_json_schema()['properties']['strategy']['enum'], n(), list(S)]))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    enum, names, registered = json.loads(listed.stdout)
    assert registered == own and enum == names and enum[: len(own)] == own
    assert {"evotorch-snes", "evotorch-pgpe"} <= set(enum)
    assert [
        n for n in STRATEGIES if STRATEGIES[n].__module__.startswith("evolora.evolution")
    ] == own

    cfg = parse_study(
        {
            "evolution": {
                "population": 8,
                "generations": 7,
                "mutation_sigma": 0.3,
                "speciation": {"enabled": True, "target_species": 5},
                "es": {"sigma": 0.07},
            }
        }
    )
    ga = strategy_factory(cfg, None)(np.random.default_rng(0), iter(range(99)).__next__)
    assert type(ga) is GeneticAlgorithm and ga.p == GAParams(population=8, mutation_sigma=0.3)
    assert ga.speciation.p == SpeciationParams(target_species=5)
    for name, kind in (("openai-es", OpenAIES), ("sep-cma-es", SepCMAES), ("snes", SNES)):
        es = parse_study(
            {
                "evolution": {
                    "strategy": name,
                    "population": 8,
                    "generations": 7,
                    "es": {"sigma": 0.07},
                }
            }
        )
        assert strategy_params(es) == ESParams(population=8, horizon=7, sigma=0.07)
        assert (
            type(strategy_factory(es, None)(np.random.default_rng(0), iter(range(99)).__next__))
            is kind
        )


def test_a_strategy_is_named_once_and_a_taken_name_is_refused():
    from evolora.evolution import STRATEGIES, GeneticAlgorithm, register_strategy

    class Mine(GeneticAlgorithm):
        name = "ga"

    with pytest.raises(ValueError, match="already registered"):
        register_strategy(Mine)
    with pytest.raises(TypeError):
        register_strategy(object)
    assert STRATEGIES["ga"] is GeneticAlgorithm


def test_a_bad_study_file_is_reported_before_torch_transformers_or_mlflow_load(tmp_path):
    """Validation runs first: no heavy library is imported to say that a key is misspelt."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("evolution:\n  populaton: 3\n")
    code = (
        "import sys\nfrom evolora.orchestrator.cli import main\nrc = main(['run', sys.argv[1]])\n"
        "heavy = ('torch', 'transformers', 'peft', 'mlflow', 'optuna', 'scipy')\n"
        "print(rc, sorted(m for m in heavy if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().splitlines()[-1] == "2 []", proc.stdout + proc.stderr
    assert "did you mean population?" in proc.stderr


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
    "text,says",
    [
        (
            "name: a\nseed: 1\nname: b\n",
            r"s\.yaml, line 3, column 1: duplicate key 'name' \(first at line 1\)",
        ),
        (
            "evolution:\n  population: 4\n  population: 8\n",
            r"line 3, column 3: duplicate key 'population'",
        ),
        (BOMB, r"expands to more than 100,000 nodes \(aliases\)"),
        ("name: [unclosed\n", r"s\.yaml, line 2, column 1: expected ',' or ']'"),
        (b"\xff\xfen\x00a\x00m\x00e\x00", r"s\.yaml: not UTF-8 text \(byte 0\)"),
        (b"name: \x80\x81\n", r"not UTF-8 text \(byte 6\)"),
    ],
)
def test_malformed_yaml_exits_2_in_one_short_line_naming_the_file(tmp_path, capsys, text, says):
    import re

    p = tmp_path / "s.yaml"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    assert main(["run", str(p)]) == 2  # an alias bomb is refused from its graph, never expanded
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 400 and re.search(says, err[0]), err


@pytest.mark.parametrize(
    "over,path",
    [
        ({"data__train_path": "nowhere/train.csv"}, "data.train_path"),
        ({"data__test_path": "nowhere/test.csv"}, "data.test_path"),
        (
            {
                "data__dev_path": None,
                "data__val_fraction": 0.1,
                "data__val_sources": ["answers-forums"],
            },
            "data.val_sources",
        ),
    ],
)
def test_the_schema_reads_no_data_file_and_a_sweep_refuses_bad_data_before_writing(
    tmp_path, capsys, over, path
):
    """Data are checked once, where they are loaded: the schema accepts the study (its validators read no
    file), and a sweep (like a run) exits 2 naming the field before its study, parent run or checkpoint exist."""
    study = tmp_path / "s.yaml"
    study.write_text(
        yaml.safe_dump(
            tiny_study(
                tmp_path,
                search={"evolution.mutation_sigma": {"type": "float", "low": 0.01, "high": 0.1}},
                **over,
            )
        )
    )
    load_study(study)  # no file read: accepted
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["sweep", str(study), "--n-trials", "1", "--no-progress"])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"evolora: error: {path}:"), err
    # no mlruns/, no journal, no checkpoints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_evolution_params_are_for_strategies_from_installed_packages(tmp_path, capsys):
    """`evolution.params` holds an ask/tell strategy's own settings; for evolora's strategies it is refused,
    naming where their settings live; a strategy name nothing provides lists what is there."""
    study = tiny_study(tmp_path)
    study["evolution"] = {"strategy": "openai-es", "params": {"sigma": 0.1}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "evolution.params" in err and "evolution.es" in err
    study["evolution"] = {"strategy": "no-such-strategy"}
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "evolution.strategy" in err and "snes" in err and "no-such-strategy" in err
    assert not (tmp_path / "mlruns").exists()  # nothing written
