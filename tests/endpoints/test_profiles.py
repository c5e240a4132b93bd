"""Reference profiles computed from uploaded samples."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from endpoints.profiles import OTHER, ProfileError, bin_numeric, profile_from_file

CSV = (
    "sepal_length,sepal_width,species,prediction\n"
    + "".join(f"{4 + (i % 40) / 10},{2 + (i % 20) / 10},{['setosa', 'versicolor', 'virginica'][i % 3]},{i % 3}\n"
              for i in range(300))
).encode()


def test_csv_sample_gives_numeric_and_categorical_bins_that_sum_to_one():
    profile = profile_from_file(CSV, "iris.csv", prediction_column="prediction")
    assert profile["rows"] == 300
    features = {f["name"]: f for f in profile["features"]}
    assert set(features) == {"sepal_length", "sepal_width", "species"}
    numeric = features["sepal_length"]
    assert numeric["type"] == "numeric"
    assert len(numeric["proportions"]) == len(numeric["cuts"]) + 1
    assert sum(numeric["proportions"]) == pytest.approx(1.0)
    assert numeric["min"] == pytest.approx(4.0) and numeric["max"] == pytest.approx(7.9)
    categorical = features["species"]
    assert categorical["type"] == "categorical"
    assert categorical["categories"][-1] == OTHER
    assert sorted(categorical["categories"][:-1]) == ["setosa", "versicolor", "virginica"]
    assert sum(categorical["proportions"]) == pytest.approx(1.0)
    assert profile["prediction"]["name"] == "prediction"


def test_equal_mass_bins_put_about_a_tenth_of_continuous_data_in_each_bin():
    rng = np.random.default_rng(7)
    values = rng.normal(size=5000)
    csv = ("x\n" + "\n".join(f"{v:.6f}" for v in values)).encode()
    feature = profile_from_file(csv, "x.csv")["features"][0]
    assert len(feature["proportions"]) == 10
    assert all(p == pytest.approx(0.1, abs=0.01) for p in feature["proportions"])


def test_values_outside_the_reference_range_land_in_the_outer_bins():
    feature = profile_from_file(b"x\n" + b"\n".join(str(i).encode() for i in range(100)), "x.csv")["features"][0]
    bins = bin_numeric(feature["cuts"], [-1000, 1000])
    assert list(bins) == [0, len(feature["cuts"])]


def test_parquet_sample_is_profiled_like_csv():
    table = pa.table({"age": [20, 30, 40, 50, None], "city": ["a", "b", "a", "c", "a"]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    profile = profile_from_file(buffer.getvalue(), "sample.parquet")
    features = {f["name"]: f for f in profile["features"]}
    assert features["age"]["type"] == "numeric"
    assert features["age"]["missing"] == pytest.approx(0.2)
    assert features["city"]["type"] == "categorical"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.csv", "empty"),
        (b"a,b\n", "header-only.csv", "no rows"),
        (b"a,b\n1,2\n3\n", "ragged.csv", "Line 3 has 1 fields"),
        (b"\xff\xfe\x00bad", "binary.csv", "not UTF-8"),
        (b"PAR1 not really parquet", "x.parquet", "cannot be read"),
        (b"a,b\n1,2\n", "model.pkl", r"CSV \(\.csv\) or Parquet"),
        (b"a,a\n1,2\n", "dup.csv", "repeats a column"),
    ],
)
def test_bad_files_get_a_clear_error(data, name, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_file(data, name)


def test_missing_prediction_column_is_named():
    with pytest.raises(ProfileError, match="prediction column 'label' is not in the sample"):
        profile_from_file(CSV, "iris.csv", prediction_column="label")


def test_signature_must_match_the_sample():
    with pytest.raises(ProfileError, match="lacks: petal_length"):
        profile_from_file(CSV, "iris.csv", signature=[{"name": "petal_length", "type": "numeric"}])
    with pytest.raises(ProfileError, match="declared numeric but holds 'setosa'"):
        profile_from_file(CSV, "iris.csv", signature=[{"name": "species", "type": "numeric"}])
