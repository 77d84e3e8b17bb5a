"""RunConfig from TOML and --set overrides; hashes; clear errors for unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from harness import cli
from harness.config import EvalProtocol, ReuseConfig, RunConfig, check_fields, load_toml, parse_overrides, run_config_from_dict


def test_toml_and_overrides_build_a_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('searcher = "evolution"\nseed = 3\n[protocol]\nval_size = 500\n[searcher_params]\ngenerations = 5\n')
    data = load_toml(path)
    config = run_config_from_dict(data)
    assert (config.searcher, config.seed, config.protocol.val_size) == ("evolution", 3, 500)
    assert config.searcher_params == {"generations": 5}
    over = parse_overrides(["protocol.bn_mode=exact", "searcher=pcf-es", "searcher_params.threshold=0.6"])
    assert over == {"protocol": {"bn_mode": "exact"}, "searcher": "pcf-es", "searcher_params": {"threshold": 0.6}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sercher": "x"}, "unknown key.*sercher.*valid: .*searcher"),
        ({"protocol": {"valsize": 3}}, r"unknown key.*valsize in \[protocol\]"),
        ({"protocol": {"bn_mode": "foo"}}, "bn_mode must be 'ema' or 'exact'"),
        ({"reuse": {"location": "disk"}}, "reuse.location must be 'device' or 'host', got 'disk'"),
        ({"reuse": {"level": "all"}}, "reuse.level must be 'none' or 'frozen' or 'prefix', got 'all'"),
        ({"reuse": {"budget_bytes": -1}}, "reuse.budget_bytes must be >= 0, got -1"),
        ({"reuse": {"budget_bytes": "lots"}}, "reuse.budget_bytes must be an integer or 'auto', got 'lots'"),
        ({"cache": {"enabled": False}}, r"\[cache\] is now \[reuse\]"),
        ({"carbon": {"tracking_mode": "cluster"}}, "carbon.tracking_mode must be 'process' or 'machine', got 'cluster'"),
        ({"carbon": {"enabled": "no"}}, "carbon.enabled must be"),
    ],
)
def test_bad_config_keys_and_values_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        run_config_from_dict(data)


def test_malformed_toml_and_override_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("searcher = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["seed"])


def test_hashes_follow_what_changes_results():
    base = RunConfig()
    assert base.hash() == RunConfig(results_dir="elsewhere", run_id="x").hash()
    # CodeCarbon measures and never changes a result: switching it off keeps the run id.
    off = run_config_from_dict({"carbon": {"enabled": False, "tracking_mode": "machine"}})
    assert off.hash() == base.hash() and off.carbon.enabled is False
    assert base.hash() != RunConfig(seed=1).hash()
    assert EvalProtocol().hash() != EvalProtocol(val_size=100).hash()
    # Reuse never changes a score: not in the protocol hash, but run ids differ per level.
    none = RunConfig(reuse=ReuseConfig(level="none"))
    assert none.protocol.hash() == base.protocol.hash() and none.hash() != base.hash()



def test_protocol_hashes_are_pinned():
    # Run ids and recorded runs carry these: a change to the protocol's fields or their hashing must show here.
    assert EvalProtocol().hash() == "db8f136cb3e44c0d"
    other = EvalProtocol(
        calib_batches=2, calib_batch_size=32, val_size=256, eval_batch_size=128, bn_mode="ema", bn_momentum=0.05,
        augment=False, seed=3, dtype="bfloat16", channels_last=False,
    )
    assert other.hash() == "204960a7ecb5ff61"


def test_reuse_flags_and_the_no_cache_alias(tmp_path):
    parser = cli.make_parser()
    assert RunConfig().reuse == ReuseConfig("prefix", "auto", "device")
    for argv, level in ((["--reuse", "frozen"], "frozen"), (["--no-cache"], "none"), ([], "prefix")):
        args = parser.parse_args(["search", *argv])
        assert cli.build_config(args).reuse.level == level
    args = parser.parse_args(["search", "--set", "reuse.level=frozen", "--set", "reuse.budget_bytes=0"])
    assert cli.build_config(args).reuse == ReuseConfig("frozen", 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--reuse", "prefix", "--no-cache"])


def test_cli_lists_its_commands_and_reports_errors(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "search", "compare", "report", "reproduce"):
        assert command in out
    assert cli.main(["search", "--supernet", "nope", "--quiet"]) == 2
    assert "unknown supernet 'nope'" in capsys.readouterr().err


def test_cli_train_writes_a_checkpoint_and_refuses_to_redo_it(tmp_path, capsys):
    path = tmp_path / "ck.pt"
    args = ["train", "--epochs", "1", "--checkpoint", str(path), "--quiet", "--set", "supernet_overrides.widths=[8, 16, 32]"]
    assert cli.main(args) == 0
    assert path.exists() and "trained conv-tiny on fashion16" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "already exists" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["protocol.val_size=abc"], "protocol.val_size must be an integer, got 'abc'"),
        (["protocol.val_size=300.5"], "protocol.val_size must be an integer, got 300.5"),
        (["reuse.budget_bytes=lots"], "reuse.budget_bytes must be an integer or 'auto', got 'lots'"),
        (["reuse.budget_bytes=1.5"], "reuse.budget_bytes must be an integer or 'auto', got 1.5"),
        (["protocol.seed=-1"], "protocol.seed must be >= 0, got -1"),
        (["seed=-1"], "^seed must be >= 0, got -1"),
        (["seed=true"], "^seed must be an integer, got True"),
        (["protocol.device=gpu"], r"protocol.device must be 'cpu' or 'cuda\[:index\]', got 'gpu'"),
        (["protocol.bn_momentum=nan"], "protocol.bn_momentum must be a finite number, got nan"),
        (["country_iso_code=3"], "country_iso_code must be a string, got 3"),
        (["run_id=.."], r"run id '\.\.' is not a plain folder name"),
        (["run_id='a/b'"], r"run id 'a/b' is not a plain folder name"),
    ],
)
def test_every_config_value_is_type_checked_when_built_naming_its_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        run_config_from_dict(parse_overrides(overrides))


def test_check_fields_understands_unions_literals_and_mappings():
    @dataclass(frozen=True)
    class Reuse:  # the shape of the coming ReuseConfig
        level: Literal["none", "prefix"] = "prefix"
        budget_bytes: int | Literal["auto"] = "auto"
        share: float = 0.5
        extra: Mapping[str, Any] = field(default_factory=dict)

        def __post_init__(self) -> None:
            check_fields(self, "reuse")

    assert Reuse(budget_bytes=10).budget_bytes == 10 and Reuse(share=1).share == 1.0
    assert isinstance(Reuse(share=1).share, float)  # 1 and 1.0 hash alike
    for kwargs, message in [
        ({"budget_bytes": "lots"}, "reuse.budget_bytes must be an integer or 'auto', got 'lots'"),
        ({"level": "all"}, "reuse.level must be 'none' or 'prefix', got 'all'"),
        ({"share": "half"}, "reuse.share must be a finite number, got 'half'"),
        ({"extra": [1]}, r"reuse.extra must be a table, got \[1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            Reuse(**kwargs)


def test_spellings_of_one_setting_hash_alike():
    assert RunConfig(country_iso_code=" fra ").country_iso_code == "FRA"
    assert RunConfig(country_iso_code="fra").hash() == RunConfig(country_iso_code="FRA").hash()
    whole, named = EvalProtocol(val_size=0).for_split(2000), EvalProtocol(val_size=2000).for_split(2000)
    assert whole == named and whole.hash() == named.hash() and whole.val_size == 2000
    assert EvalProtocol(val_size=500).for_split(2000).val_size == 500
    with pytest.raises(ValueError, match="protocol.val_size 2001 exceeds the 2000 validation images of fashion16"):
        EvalProtocol(val_size=2001).for_split(2000)
    assert EvalProtocol(bn_momentum=1).hash() == EvalProtocol(bn_momentum=1.0).hash()


def test_config_path_that_is_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"config file {tmp_path} is a folder"):
        load_toml(tmp_path)


def test_no_carbon_flag_is_the_carbon_enabled_key():
    from harness import cli

    args = cli.make_parser().parse_args(["search", "--no-carbon"])
    assert cli.config_data(args) == {"carbon": {"enabled": False}}
    assert cli.build_config(args).carbon.enabled is False
    assert cli.build_config(cli.make_parser().parse_args(["compare"])).carbon.enabled is True
