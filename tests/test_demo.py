import math
import warnings

from sklearn.exceptions import ConvergenceWarning

from sklearn_autodecoder import demo


def test_demo_runs_and_saves_picture(tmp_path, capsys):
    path = tmp_path / "demo.png"
    results = demo.run(n_components=4, max_iter=3, output=str(path))
    out = capsys.readouterr().out
    assert "PCA" in out and "AutoDecoder" in out
    assert path.stat().st_size > 1000
    assert all(math.isfinite(v) and v > 0 for v in results.values())


def test_demo_at_its_defaults_stops_without_a_convergence_warning():
    # Early stopping ends the demo's fit before max_iter (issue 21).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = demo.run(output="")
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert results["autodecoder"] < results["pca"]
