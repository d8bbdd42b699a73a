"""Training config: recipe < config file < options, unknown keys, types, round trip."""

from __future__ import annotations

import json

import pytest

from reid_stra.engine.config import RECIPES, TrainConfig, resolve_config, save_config
from reid_stra.errors import ReidError


def test_precedence_recipe_file_options(tmp_path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("lr: 1e-3\nepochs: 7\nmilestones: [2, 5]\n")
    plain = resolve_config("strong", overrides={"root": "d"})
    assert plain.lr == RECIPES["strong"]["lr"] and plain.sampler == "identity" and plain.neck == "bnneck"
    from_file = resolve_config("strong", cfg_file, {"root": "d"})
    assert (from_file.lr, from_file.epochs, from_file.milestones) == (1e-3, 7, [2, 5])
    assert from_file.triplet_weight == RECIPES["strong"]["triplet_weight"]  # untouched keys: recipe
    from_option = resolve_config("strong", cfg_file, {"root": "d", "lr": 5e-3})
    assert (from_option.lr, from_option.epochs) == (5e-3, 7)


def test_default_recipe_is_the_papers() -> None:
    cfg = resolve_config(overrides={"root": "d"})
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs, cfg.fixbase_epochs) == (
        "adam",
        3e-4,
        32,
        100,
        8,
    )
    assert cfg.label_smoothing == 0.1 and cfg.step_size == 20


def test_toml_file_and_recipe_key(tmp_path) -> None:
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text('recipe = "strong"\nbatch_size = 32\nroot = "/data"\n')
    cfg = resolve_config(None, cfg_file)
    assert (
        cfg.batch_size == 32
        and cfg.root == "/data"
        and cfg.warmup_epochs == RECIPES["strong"]["warmup_epochs"]
    )
    assert resolve_config("paper", cfg_file).sampler == "random"  # --recipe beats the file's recipe


def test_unknown_key_names_it_with_a_suggestion(tmp_path) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("bach_size: 16\n")
    with pytest.raises(
        ReidError, match=r"run.yaml: unknown option 'bach_size' \(did you mean 'batch_size'\?\)"
    ):
        resolve_config(None, cfg_file)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epochs: ten\n", "'epochs' must be an integer"),
        ("amp: 1\n", "'amp' must be true or false"),
        ("lr: fast\n", "'lr' must be a number"),
        ("- a\n- b\n", "expected a mapping"),
        ("epochs: [\n", "not valid yaml"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text: str, match: str) -> None:
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(text)
    with pytest.raises(ReidError, match=match):
        resolve_config(None, cfg_file)


def test_missing_file_and_unknown_recipe() -> None:
    with pytest.raises(ReidError, match="file not found"):
        resolve_config(None, "/nonexistent/run.yaml")
    with pytest.raises(ReidError, match="did you mean 'strong'"):
        resolve_config("strng")


def test_saved_config_reloads_identically(tmp_path) -> None:
    cfg = resolve_config("strong", overrides={"root": "/d", "epochs": 3, "model_kwargs": {"width_mult": 1.4}})
    save_config(cfg, tmp_path / "config.yaml", recipe="strong")
    assert resolve_config(None, tmp_path / "config.yaml") == cfg
    assert (tmp_path / "config.yaml").read_text().splitlines()[1] == "recipe: strong"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"root": ""}, "--root"),
        ({"batch_size": 30, "sampler": "identity", "num_instances": 4}, "multiple of --num-instances"),
        ({"triplet_weight": 1.0, "sampler": "random"}, "sampler: identity"),
        ({"epochs": 0}, "--epochs 0"),
        ({"fixbase_epochs": 5, "epochs": 2}, "--fixbase-epochs"),
        ({"sampler": "pk"}, "unknown sampler"),
    ],
)
def test_validate_rejects_unrunnable_values(changes, match: str) -> None:
    values = {"root": "/d"} | changes
    with pytest.raises(ReidError, match=match):
        TrainConfig(**values).validate()


def test_a_config_saved_before_the_torchreid_augmentation_keys_keeps_its_old_augmentation() -> None:
    from reid_stra.engine.config import TrainConfig, config_from_dict

    old = TrainConfig(root="/data").to_dict()
    for key in ("crop_style", "erasing_fill"):
        del old[key]
    restored = config_from_dict(old, "checkpoint")
    assert (restored.crop_style, restored.erasing_fill) == ("pad", "zero")
    fresh = config_from_dict(TrainConfig(root="/data").to_dict(), "checkpoint")
    assert (fresh.crop_style, fresh.erasing_fill) == ("translate", "mean")


def test_retired_amp_is_read_as_precision_with_a_notice(synthetic_root, tmp_path) -> None:
    """Old configs and checkpoints hold ``amp``: false still means fp32, and the run says so."""
    from reid_stra.engine.config import TrainConfig, config_from_dict
    from reid_stra.engine.run_plan import plan_run

    old = {**TrainConfig(root="/data").to_dict(), "amp": False, "log_indices": False}  # retired keys
    assert config_from_dict(old, "checkpoint").precision == "fp32"
    assert config_from_dict({**old, "amp": True}, "checkpoint").precision == "auto"
    assert config_from_dict({**old, "precision": "bf16"}, "checkpoint").precision == "bf16"
    config_file = tmp_path / "old.yaml"
    config_file.write_text(f"root: {synthetic_root}\namp: false\nepochs: 1\n")
    plan = plan_run(tmp_path / "run", config_file=config_file)
    assert plan.config.precision == "fp32"
    assert [note for note in plan.notes if "'amp' is retired" in note] != []
    assert not any(
        "'amp'" in note
        for note in plan_run(tmp_path / "other", overrides={"root": str(synthetic_root)}).notes
    )


def test_every_train_option_sets_the_config_field_the_table_names() -> None:
    """`train`'s options map to TrainConfig fields through one explicit table: a renamed option or
    field fails here instead of silently no longer overriding the config."""
    import dataclasses
    import inspect

    from reid_stra.cli.cmd_train import OPTION_FIELDS, RUN_OPTIONS, train
    from reid_stra.engine.config import TrainConfig

    parameters = set(inspect.signature(train).parameters)
    assert set(OPTION_FIELDS) | set(RUN_OPTIONS) == parameters
    assert set(OPTION_FIELDS).isdisjoint(RUN_OPTIONS)
    assert set(OPTION_FIELDS.values()) <= {field.name for field in dataclasses.fields(TrainConfig)}


def test_train_options_reach_the_config(cli, synthetic_root, tmp_path) -> None:
    out = tmp_path / "run"
    result = cli(
        "train", "--root", synthetic_root, "--out", out, "--epochs", 2, "--lr", 0.01, "--seed", 7,
        "--precision", "fp32", "--dry-run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert (config["epochs"], config["lr"], config["seed"], config["precision"]) == (2, 0.01, 7, "fp32")
    assert config["root"] == str(synthetic_root.resolve())
    assert not out.exists()  # a dry run writes nothing


def test_recipes_state_only_what_differs_from_the_defaults() -> None:
    """The defaults are the paper's recipe; a recipe lists its differences only (so a default
    changed later cannot hide behind a recipe restating the old value)."""
    from reid_stra.engine.config import RECIPES, TrainConfig

    defaults = TrainConfig()
    restated = {(name, key) for name, recipe in RECIPES.items() for key, value in recipe.items()
                if getattr(defaults, key) == value}  # fmt: skip
    assert restated == set()
    strong = resolve_config("strong")
    assert (strong.lr, strong.epochs, strong.neck, strong.milestones) == (3.5e-4, 120, "bnneck", [40, 70])
    assert resolve_config("paper").fixbase_epochs == 8 and resolve_config("paper").lr == 3e-4
