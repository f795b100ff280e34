"""A real ML pipeline on scikit-learn's bundled breast cancer dataset (no download):

    ingest -> validate -> features -> train -> evaluate -> register

`ingest` lands the raw data as dated CSV partitions (`dt=YYYY-MM-DD/part-0.csv`), the way an
upstream ETL job would, and reads them back; every later step works on artifacts that
stackwise stores and tracks. The model is registered in the MLflow Model Registry.

Run it:  stackwise run examples/breast_cancer/pipeline.py:training
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

import stackwise as sw

TARGET = "malignant"


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


@functools.lru_cache(maxsize=1)
def _dataset() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": TARGET})
    frame[TARGET] = 1 - frame[TARGET]  # sklearn codes benign as 1; we model "malignant"
    return frame


def land_partition(root: Path, day: dt.date, rows: int) -> Path:
    """Stand-in for the upstream ETL job: one dated CSV per day, written once, atomically.

    Each day is a seeded sample of the dataset with measurement noise that waxes and wanes
    over a 60-day cycle, so that models trained on different intervals really differ."""
    path = root / f"dt={day.isoformat()}" / "part-0.csv"
    if path.exists():
        return path
    frame = _dataset().copy()
    rng = np.random.default_rng(int(day.strftime("%Y%m%d")))
    sample = frame.sample(n=rows, replace=True, random_state=rng).reset_index(drop=True)
    features = [c for c in sample.columns if c != TARGET]
    noise = 0.02 + 0.25 * abs(((day.toordinal() % 60) / 30.0) - 1.0)
    sample[features] = sample[features] * rng.normal(1.0, noise, size=(rows, len(features)))
    sample[features] = sample[features].clip(lower=0.0)
    sample["event_date"] = day.isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    sample.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


@sw.step(tags={"kind": "etl"}, retries=2)
def ingest(
    raw_dir: str, days: int, end_date: str, rows_per_day: int, ctx: sw.StepContext
) -> pd.DataFrame:
    """Read the raw daily partitions of this run's data interval [start, end), landing any
    that are missing. An unscheduled run reads the `days` days up to `end_date`."""
    if ctx.interval is not None:
        first, stop = ctx.interval.start.date(), ctx.interval.end.date()
    else:
        stop = dt.date.fromisoformat(end_date) + dt.timedelta(days=1)
        first = stop - dt.timedelta(days=days)
    root = Path(raw_dir).resolve()
    parts = [
        land_partition(root, first + dt.timedelta(days=i), rows_per_day)
        for i in range((stop - first).days)
    ]
    if not parts:
        raise ValueError(f"the data interval [{first}, {stop}) holds no day to read")
    raw = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    for path in parts:
        sw.log_dataset(path, name=f"raw/{path.parent.name}", source=path.as_uri())
    sw.log_metrics({"raw_rows": len(raw), "raw_partitions": len(parts)})
    return raw


@sw.step(tags={"kind": "etl"})
def validate(raw: pd.DataFrame) -> pd.DataFrame:
    """Refuse data that would silently train a bad model: schema, nulls, ranges, labels."""
    features = [c for c in raw.columns if c not in (TARGET, "event_date")]
    problems = []
    if len(features) != 30:
        problems.append(f"expected 30 feature columns, found {len(features)}")
    nulls = int(raw[features].isna().sum().sum())
    if nulls:
        problems.append(f"{nulls} missing feature values")
    negative = int((raw[features] < 0).sum().sum())
    if negative:
        problems.append(f"{negative} negative measurements")
    if not set(raw[TARGET].unique()) <= {0, 1}:
        problems.append("labels outside {0, 1}")
    if problems:
        raise ValueError("raw data failed validation: " + "; ".join(problems))
    clean = raw.drop_duplicates(subset=features).reset_index(drop=True)
    sw.log_metrics(
        {"rows": len(clean), "duplicates_dropped": len(raw) - len(clean),
         "positive_rate": float(clean[TARGET].mean())}
    )  # fmt: skip
    return clean


@sw.step(tags={"kind": "features"})
def features(clean: pd.DataFrame, test_size: float, seed: int) -> Split:
    """Shape and density ratios a pathologist would look at, then a stratified split."""
    from sklearn.model_selection import train_test_split

    data = clean.drop(columns=["event_date"]).copy()
    data["area_to_perimeter"] = data["mean area"] / data["mean perimeter"]
    data["worst_to_mean_radius"] = data["worst radius"] / data["mean radius"]
    data["concavity_x_points"] = data["mean concavity"] * data["mean concave points"]
    data["log_worst_area"] = np.log(data["worst area"].clip(lower=1e-9))
    train, test = train_test_split(
        data, test_size=test_size, random_state=seed, stratify=data[TARGET]
    )
    sw.log_metrics(
        {"train_rows": len(train), "test_rows": len(test), "features": data.shape[1] - 1}
    )
    return Split(train.reset_index(drop=True), test.reset_index(drop=True))


@sw.step(tags={"kind": "training"}, resources=sw.Resources(cpu=1, memory="2Gi"))
def train(
    train: pd.DataFrame, n_estimators: int, learning_rate: float, max_depth: int, seed: int
) -> Any:
    """Gradient-boosted trees behind a scaler: strong on small tabular data."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = train.drop(columns=[TARGET]), train[TARGET]
    model = make_pipeline(
        StandardScaler(),
        GradientBoostingClassifier(
            n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
            random_state=seed,
        ),
    )  # fmt: skip
    model.fit(x, y)
    sw.log_metric("train_accuracy", float(model.score(x, y)))
    return model


@sw.step(tags={"kind": "evaluation"})
def evaluate(model: Any, test: pd.DataFrame) -> dict[str, float]:
    """Held-out metrics, plus a confusion matrix and ROC curve as a plot artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.metrics import (
        ConfusionMatrixDisplay,
        RocCurveDisplay,
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    x, y = test.drop(columns=[TARGET]), test[TARGET]
    predicted = model.predict(x)
    scores = model.predict_proba(x)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted)),
        "precision": float(precision_score(y, predicted)),
        "recall": float(recall_score(y, predicted)),
        "roc_auc": float(roc_auc_score(y, scores)),
    }
    sw.log_metrics(metrics)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ConfusionMatrixDisplay.from_predictions(
        y, predicted, ax=left, display_labels=["benign", "malignant"]
    )
    RocCurveDisplay.from_predictions(y, scores, ax=right, name="model")
    left.set_title("Confusion matrix (test)")
    right.set_title(f"ROC (AUC {metrics['roc_auc']:.3f})")
    fig.tight_layout()
    if sw.current_context() is not None and sw.current_context().mlflow_run_id:  # type: ignore[union-attr]
        mlflow.log_figure(fig, "evaluation.png")
    plt.close(fig)
    return metrics


@sw.step(tags={"kind": "registry"})
def register(
    model: Any,
    metrics: dict[str, float],
    train: pd.DataFrame,
    model_name: str,
    ctx: sw.StepContext,
) -> dict[str, Any]:
    """Register a new version of `model_name`, tagged with its lineage (runs, code version,
    datasets), and let the promotion policy next to this file move it to `staging` when every
    rule passes (a refusal is recorded in the model's history, and the run still succeeds)."""
    if ctx.mlflow_run_id is None:
        print("tracking is off: the model was not registered")
        return {"registered": False}
    registered = sw.register_model(
        model,
        model_name,
        policies=Path(__file__).with_name("policies.yaml"),
        tags={
            # `validate` refuses bad data, so a model that reaches this step passed it
            "validation": "passed",
            "test_accuracy": f"{metrics['accuracy']:.4f}",
            "test_roc_auc": f"{metrics['roc_auc']:.4f}",
        },
        input_example=train.drop(columns=[TARGET]).head(5).astype("float64"),
        # MLflow stores scikit-learn models with skops; we built this model ourselves, so the
        # tree structures gradient boosting uses are trusted.
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        # Pinned from this environment: skips MLflow's requirement inference, which starts a
        # subprocess and costs seconds.
        pip_requirements=_pinned("scikit-learn", "pandas", "numpy", "skops"),
    )
    return {
        "registered": True,
        "name": model_name,
        "version": registered.version,
        "model_uri": registered.model_uri,
        "promoted_to": [p.alias for p in registered.promotions if p.changed],
    }


def _pinned(*names: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


@sw.pipeline(
    # One model per week of data: `stackwise backfill ... --start 2026-08-01 --end 2026-10-31`
    # trains on each week's raw partitions in turn and shows how the metrics move.
    schedule=sw.Schedule("@weekly", start="2026-06-07", timezone="UTC", catchup=False),
)
def training(
    n_estimators: int = 150,
    learning_rate: float = 0.1,
    max_depth: int = 2,
    test_size: float = 0.25,
    seed: int = 42,
    days: int = 30,
    end_date: str = "2026-10-31",
    rows_per_day: int = 40,
    raw_dir: str = ".stackwise/data/raw",
    model_name: str = "breast_cancer_classifier",
) -> None:
    """Train and register a breast cancer classifier."""
    raw = ingest(raw_dir, days, end_date, rows_per_day)
    clean = validate(raw)
    split = features(clean, test_size, seed)
    model = train(split.train, n_estimators, learning_rate, max_depth, seed)
    metrics = evaluate(model, split.test)
    register(model, metrics, split.train, model_name)
