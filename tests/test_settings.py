"""The one settings schema: engine switch, defaults, validators, NEURON's cell_permute rule, unknown keys."""

from __future__ import annotations

import inspect

import pytest

from bmtk_scaling.config.derive import derive_config
from bmtk_scaling.config.settings import (
    SETTING_NAMES,
    Engine,
    Settings,
    options,
    read_settings,
    validate_settings,
)
from bmtk_scaling.errors import BmtkScalingError, ConfigError


def test_defaults_and_engine_round_trip():
    s = read_settings({})
    assert s.engine is Engine.NEURON and s.synapses == "shared" and s.neuron_loop == "psolve" and s.partition is None
    for engine in Engine:
        config = derive_config({}, engine=engine.value)
        assert config["target_simulator"] == engine.target_simulator
        assert config["bmtk_scaling"]["coreneuron"]["gpu"] is engine.gpu
        assert read_settings(config).engine is engine
    assert Engine.parse("CoreNEURON") is Engine.CORENEURON
    with pytest.raises(ConfigError, match="engine must be one of"):
        Engine.parse("brian2")


@pytest.mark.parametrize("engine,allowed", [("coreneuron", (0, 1)), ("coreneuron_gpu", (1, 2))])
def test_cell_permute_follows_neurons_rule(engine, allowed):
    for value in (0, 1, 2):
        if value in allowed:
            assert read_settings(derive_config({}, engine=engine, cell_permute=value)).cell_permute == value
        else:
            with pytest.raises(ConfigError, match=f"cell_permute {value} is not allowed"):
                derive_config({}, engine=engine, cell_permute=value)
    assert read_settings(derive_config({}, engine=engine)).cell_permute == (1 if engine == "coreneuron_gpu" else 0)


@pytest.mark.parametrize("section,needle", [
    ({"foo": 1}, "unknown key 'bmtk_scaling.foo'"),
    ({"coreneuron": {"nthreads": 2}}, "unknown key 'bmtk_scaling.coreneuron.nthreads'"),
    ({"coreneuron": {"nthread": -3}}, "bmtk_scaling.coreneuron.nthread: Input should be greater than or equal to 1"),
    ({"coreneuron": {"verbose": 9}}, "bmtk_scaling.coreneuron.verbose"),
    ({"synapses": "each"}, "bmtk_scaling.synapses"),
    ({"coreneuron": "fast"}, "bmtk_scaling.coreneuron in the simulation config must be an object"),
    ([], "section of the simulation config must be an object"),
    ({"coreneuron": {"gpu": "yes"}}, "coreneuron.gpu in the simulation config must be true or false"),
])
def test_bad_sections_are_named(section, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        read_settings({"target_simulator": "CORENEURON", "bmtk_scaling": section})


def test_combinations_refused_before_anything_is_built():
    with pytest.raises(ConfigError, match="neuron_loop 'bmtk'"):
        derive_config({}, engine="coreneuron", neuron_loop="bmtk")
    with pytest.raises(ConfigError, match="GPUs run CoreNEURON"):
        read_settings({"target_simulator": "NEURON", "bmtk_scaling": {"coreneuron": {"gpu": True}}})
    with pytest.raises(ConfigError, match="target_simulator must be NEURON or CORENEURON"):
        read_settings({"target_simulator": "NEST"})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['gpu'\]"):
        derive_config({}, gpu=True)
    assert issubclass(ConfigError, BmtkScalingError) and issubclass(BmtkScalingError, ValueError)


def test_every_option_declared_once_with_doc_and_default():
    declared = {o.name for o in options()}
    nested = ("coreneuron", "exchange", "sites")
    assert declared == (set(Settings.model_fields) - set(nested)) | {
        f for n in nested for f in Settings.model_fields[n].annotation.model_fields}
    assert all(o.doc for o in options())
    params = inspect.signature(derive_config).parameters
    assert set(SETTING_NAMES) <= set(params)  # derive_config's signature is generated from the schema
    assert "nthread" in derive_config.__doc__


def test_configure_offers_one_option_per_setting():
    from bmtk_scaling.cli.configure import command

    offered = {p.name for p in command.params}
    assert set(SETTING_NAMES) <= offered


def test_the_docs_list_exactly_the_declared_settings():
    from pathlib import Path

    from bmtk_scaling.config.settings import options_table

    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert options_table() in text, "regenerate the table in docs/configuration.md from options_table()"


def test_build_flags_are_compiler_options_or_refused():
    """coreneuron.build_flags reaches nrnivmodl's make: only compiler options pass, normalised to single spaces."""
    flags = validate_settings({"engine": "coreneuron", "coreneuron": {"build_flags": " -O3  -march=native\t"
                                                                       "-ffp-contract=off "}})
    assert flags.coreneuron.build_flags == "-O3 -march=native -ffp-contract=off"
    assert validate_settings({}).coreneuron.build_flags is None  # off by default: nrnivmodl's own flags
    for bad in ("", "O3", "-O3; rm -rf x", "-O3 $(X)", "-o lib.so", "-shared"):
        with pytest.raises(ConfigError, match="coreneuron.build_flags"):
            validate_settings({"coreneuron": {"build_flags": bad}})
