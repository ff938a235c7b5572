"""A model nobody on this project wrote: TF Serving's half_plus_two, saved by TF 2.14,
converted for TF 1.8, gives the numbers its own test expects in real TF 1.8."""

import numpy as np
import pytest

NAME = "serving__saved_model_half_plus_two_tf2_cpu"


@pytest.mark.real_runtime
@pytest.mark.parametrize("release", ["1.8.0", "1.4.0"])
def test_tf214_serving_model_runs_in_tf1(release, corpus_case, cli, run_in_release, tmp_path):
    from runtime_fixtures import ReleaseLoadError

    with pytest.raises(ReleaseLoadError):  # unconverted, the old release refuses it
        run_in_release(release, str(corpus_case(NAME)), {"x": np.array([2.0], np.float32)}, "serving_default")
    out = tmp_path / "out"
    result = cli(corpus_case(NAME), out, "--to", release)
    assert result.returncode == 0, result.stderr
    got = run_in_release(release, str(out), {"x": np.array([2.0], np.float32)}, "serving_default")
    np.testing.assert_array_equal(got["y"], np.array([3.0], np.float32))  # reference_io.json: x=2 -> y=3
