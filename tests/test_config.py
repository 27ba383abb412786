import pytest

from hypersst import SSTConfig


def test_defaults_match_schedule_of_the_method():
    config = SSTConfig(rank=8)
    assert config.steps_per_iteration == 200
    assert config.iterations_per_round is None
    assert config.warmup_steps == 20
    assert (config.sampling, config.gradient, config.vector_geometry) == ("mixed", "enhanced", "euclidean")


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"rank": 0}, ValueError, r"SSTConfig.rank must be >= 1, got 0"),
        ({"rank": 2.5}, TypeError, r"SSTConfig.rank must be an int, got float 2.5"),
        ({"rank": 2, "steps_per_iteration": 0}, ValueError, r"steps_per_iteration must be >= 1"),
        ({"rank": 2, "iterations_per_round": 0}, ValueError, r"iterations_per_round must be >= 1"),
        ({"rank": 2, "warmup_steps": -1}, ValueError, r"warmup_steps must be >= 0"),
        ({"rank": 2, "warmup_steps": 30, "steps_per_iteration": 10}, ValueError, r"warmup_steps \(30\) exceeds"),
        ({"rank": 2, "sampling": "topk"}, ValueError, r"SSTConfig.sampling must be one of"),
        ({"rank": 2, "gradient": "natural"}, ValueError, r"SSTConfig.gradient must be one of"),
        ({"rank": 2, "vector_geometry": "stiefel"}, ValueError, r"SSTConfig.vector_geometry must be one of"),
        ({"rank": 2, "state_reset": "never"}, ValueError, r"SSTConfig.state_reset must be one of"),
        ({"rank": 2, "warmup_scope": "vectors"}, ValueError, r"SSTConfig.warmup_scope must be one of"),
        ({"rank": True}, TypeError, r"SSTConfig.rank must be an int, got bool"),
    ],
)
def test_invalid_values_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        SSTConfig(**kwargs)


def test_to_dict_round_trip():
    config = SSTConfig(rank=4, sampling="proportional", seed=3)
    assert SSTConfig(**config.to_dict()) == config
