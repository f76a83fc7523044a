import math

from sklearn_autodecoder import demo


def test_demo_runs_and_saves_picture(tmp_path, capsys):
    path = tmp_path / "demo.png"
    results = demo.run(n_components=4, max_iter=3, output=str(path))
    out = capsys.readouterr().out
    assert "PCA" in out and "AutoDecoder" in out
    assert path.stat().st_size > 1000
    assert all(math.isfinite(v) and v > 0 for v in results.values())
