"""include/drift/drift_analysis.py (the Processing script) on the churn data: a baseline from a training
split, then captured traffic -- held-out rows as they are, and shifted the way include/drift/traffic.py
shifts them. Expected values are computed here from the data (deciles, KS, chi-square)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from scipy import stats

from tests import drift_support as ds

START = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def split():
    return ds.churn_split()


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory, split):
    root = tmp_path_factory.mktemp("drift")
    inp = ds.write_baseline_inputs(root, split)
    out = root / "baseline"
    assert ds.analysis().main(["baseline", "--input-dir", str(inp), "--output-dir", str(out)]) == 0
    return out


def run_analysis(tmp_path, baseline_dir, lines: list[str], **kw) -> dict:
    inp = tmp_path / "input"
    (inp / "capture" / "2026" / "03" / "01" / "10").mkdir(parents=True)
    (inp / "baseline").symlink_to(baseline_dir)
    if lines:
        (inp / "capture" / "2026" / "03" / "01" / "10" / "00-01-000-x.jsonl").write_text(
            "\n".join(lines) + "\n"
        )
    args = ["analyse", "--input-dir", str(inp), "--output-dir", str(tmp_path / "out")]
    args += ["--start", START.isoformat(), "--end", END.isoformat(), "--endpoint", "churn-test"]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert ds.analysis().main(args) == 0
    return json.loads((tmp_path / "out" / "result.json").read_text())


def capture(rows: np.ndarray, batch: int = 5) -> list[str]:
    lines = []
    for k in range(0, len(rows), batch):
        when = START + dt.timedelta(seconds=k)
        lines.append(ds.capture_line([ds.format_row(r) for r in rows[k : k + batch]], when))
    return lines


def traffic(split, profile, count=600, seed=1):
    t = ds.traffic()
    _, pool = split["held_out"]
    return t.generate(pool, split["schema"], t.Profile(**profile), count, seed=seed)


def test_baseline_deciles_and_levels_come_from_the_training_split(baseline_dir, split):
    baseline = json.loads((baseline_dir / "baseline.json").read_text())
    _, train = split["train"]
    columns = split["schema"]["feature_columns"]
    assert set(baseline["numeric"]) == set(split["schema"]["numeric_columns"])
    assert set(baseline["categorical"]) == set(split["schema"]["categorical_levels"])
    i = columns.index("total_day_minutes")
    deciles = np.quantile(train[:, i], [0.1 * k for k in range(1, 10)])
    spec = baseline["numeric"]["total_day_minutes"]
    assert np.allclose(spec["inner_edges"], deciles)
    assert np.allclose(spec["probabilities"], 0.1, atol=0.01)
    share = train[:, columns.index("international_plan_yes")].mean()
    assert baseline["categorical"]["international_plan"]["probabilities"]["yes"] == pytest.approx(share)
    labels, _ = split["test"]
    right = (split["test_scores"] >= 0.5) == labels
    assert baseline["reference_rows"] == int(right.sum())
    assert baseline["test_accuracy"] == pytest.approx(right.mean())


def test_undrifted_traffic_reports_no_drift(tmp_path, baseline_dir, split):
    rows = traffic(split, {"kind": "none"})
    result = run_analysis(tmp_path, baseline_dir, capture(rows))
    assert result["status"] == "ok"
    assert result["records"]["rows"] == len(rows)
    assert result["drifted_features"] == []
    assert abs(result["accuracy"]["drift"]) < 0.02


def test_sudden_shift_flags_the_shifted_features_and_projects_an_accuracy_drop(tmp_path, baseline_dir, split):
    calm = run_analysis(tmp_path / "calm", baseline_dir, capture(traffic(split, {"kind": "none"})))
    shifted = ["total_day_minutes", "total_eve_calls"]
    rows = traffic(split, {"kind": "sudden", "features": shifted, "shift": 1.5})
    result = run_analysis(tmp_path / "shifted", baseline_dir, capture(rows))
    assert result["drift"] is True
    assert sorted(result["drifted_features"]) == sorted(shifted)
    _, train = split["train"]
    columns = split["schema"]["feature_columns"]
    for name in shifted:
        info = result["features"][name]
        i = columns.index(name)
        expected_p = stats.ks_2samp(train[:, i], rows[:, i]).pvalue
        assert info["p_value"] == pytest.approx(expected_p, rel=1e-6) and info["p_value"] < 0.05
        edges = np.unique(np.quantile(train[:, i], np.linspace(0.1, 0.9, 9)))
        full = np.concatenate([[-np.inf], edges, [np.inf]])
        base = np.histogram(train[:, i], full)[0] / len(train)
        now = np.histogram(rows[:, i], full)[0] / len(rows)
        # np.histogram closes bins on the left, as the script does (a value on an edge goes up)
        assert info["drift_score"] == pytest.approx(np.abs(base - now).sum(), abs=1e-9)
        assert info["drift_score"] > result["thresholds"]["drift_score"]
    assert result["accuracy"]["drift"] > calm["accuracy"]["drift"] + 0.02
    assert result["accuracy"]["projected_accuracy"] < calm["accuracy"]["projected_accuracy"]


def test_gradual_shift_drifts_less_than_sudden(tmp_path, baseline_dir, split):
    feature = ["total_night_minutes"]
    sudden = run_analysis(
        tmp_path / "s",
        baseline_dir,
        capture(traffic(split, {"kind": "sudden", "features": feature, "shift": 1.0})),
    )
    gradual = run_analysis(
        tmp_path / "g",
        baseline_dir,
        capture(traffic(split, {"kind": "gradual", "features": feature, "shift": 1.0})),
    )
    s, g = sudden["features"][feature[0]], gradual["features"][feature[0]]
    assert 0 < g["drift_score"] < s["drift_score"]
    assert s["drifted"]


def test_changed_category_mix_is_flagged_by_chi_square(tmp_path, baseline_dir, split):
    rows = traffic(split, {"kind": "category", "category": ("international_plan", "yes", 0.5)})
    result = run_analysis(tmp_path, baseline_dir, capture(rows))
    info = result["features"]["international_plan"]
    assert info["type"] == "categorical" and info["drifted"]
    columns = split["schema"]["feature_columns"]
    share = rows[:, columns.index("international_plan_yes")].mean()
    assert info["incoming_probabilities"]["yes"] == pytest.approx(share, abs=1e-6)
    base = info["baseline_probabilities"]["yes"]
    assert info["drift_score"] == pytest.approx(2 * abs(share - base), abs=1e-6)
    assert result["drifted_features"][0] == "international_plan"
    assert info["p_value"] < 1e-6


def test_malformed_lines_are_counted_by_reason_and_skipped(tmp_path, baseline_dir, split):
    rows = traffic(split, {"kind": "none"}, count=40)
    lines = capture(rows)
    width = rows.shape[1]
    lines += [
        "{not json",
        json.dumps({"eventVersion": "0"}),
        ds.capture_line(["1,2,3"], START),
        ds.capture_line([",".join(["x"] * width)], START),
        ds.capture_line([ds.format_row(rows[0])], START - dt.timedelta(minutes=5)),
    ]
    result = run_analysis(tmp_path, baseline_dir, lines)
    records = result["records"]
    assert records["rows"] == len(rows)
    assert records["skipped_by_reason"] == {
        "not a data-capture JSON line (captureData.endpointInput missing)": 2,
        f"expected {width} fields, got 3": 1,
        "non-numeric value": 1,
        "inferenceTime outside the data interval": 1,
    }
    assert records["lines"] == len(lines) and records["skipped"] == 5
    assert all(
        e["file"].endswith(".jsonl") and e["line"] > len(rows) // 5 for e in records["skipped_examples"]
    )


def test_no_traffic_is_a_result(tmp_path, baseline_dir):
    result = run_analysis(tmp_path, baseline_dir, [])
    assert result["status"] == "no_traffic" and result["drift"] is False
    assert result["records"]["files"] == 0


def test_missing_baseline_fails_with_the_reason(tmp_path, capsys):
    (tmp_path / "input" / "baseline").mkdir(parents=True)
    code = ds.analysis().main(
        ["analyse", "--input-dir", str(tmp_path / "input"), "--output-dir", str(tmp_path)]
    )
    assert code == 1
    assert "no baseline.json under" in capsys.readouterr().err.strip().splitlines()[-1]


def test_traffic_cli_rejects_a_profile_it_cannot_apply(tmp_path, split, capsys):
    labels, features = split["held_out"]
    data = tmp_path / "held_out.csv"
    np.savetxt(data, np.column_stack([labels, features])[:50], delimiter=",", fmt="%.10g")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(split["schema"]))
    base = ["--endpoint", "e", "--data", str(data), "--schema", str(schema), "--region", "us-east-1"]
    for extra, message in (
        (["--profile", "sudden"], "profile sudden needs features to shift"),
        (["--profile", "sudden", "--features", "state_CA"], "'state_CA' is not a numeric column"),
        (["--profile", "category", "--category", "international_plan=maybe:0.5"], "no one-hot column"),
        (["--profile", "category", "--category", "international_plan"], "expected column=level:fraction"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            ds.traffic().main(base + extra)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_encode_records_one_hot_encodes_like_the_glue_job(split):
    schema = split["schema"]
    _, features = split["train"]
    columns = schema["feature_columns"]
    row = features[0]
    record = {name: str(row[columns.index(name)]) for name in schema["numeric_columns"]}
    for column, levels in schema["categorical_levels"].items():
        record[column] = next(level for level in levels if row[columns.index(f"{column}_{level}")] == 1)
    assert np.array_equal(ds.traffic().encode_records([record], schema)[0], row)
