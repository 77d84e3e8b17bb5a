"""RunConfig from TOML and --set overrides; hashes; clear errors for unknown keys."""

from __future__ import annotations

import pytest

from harness import cli
from harness.config import EvalProtocol, ReuseConfig, RunConfig, load_toml, parse_overrides, run_config_from_dict


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
        ({"reuse": {"location": "disk"}}, "reuse location must be 'device' or 'host'"),
        ({"reuse": {"level": "all"}}, "reuse level must be one of none, frozen, prefix, got 'all'"),
        ({"reuse": {"budget_bytes": -1}}, "budget_bytes must be an integer >= 0 or 'auto', got -1"),
        ({"reuse": {"budget_bytes": "lots"}}, "budget_bytes must be an integer >= 0 or 'auto'"),
        ({"cache": {"enabled": False}}, r"\[cache\] is now \[reuse\]"),
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
    assert base.hash() != RunConfig(seed=1).hash()
    assert EvalProtocol().hash() != EvalProtocol(val_size=100).hash()
    # Reuse never changes a score: not in the protocol hash, but run ids differ per level.
    none = RunConfig(reuse=ReuseConfig(level="none"))
    assert none.protocol.hash() == base.protocol.hash() and none.hash() != base.hash()


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
