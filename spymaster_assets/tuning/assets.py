"""The tuning asset and job (Dagster wiring only): run by hand or on a schedule of its own, never in the daily run."""


from datetime import date

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset, define_asset_job

from spymaster_resources import SpymasterResource

from ..gold.assets import gold_episodes
from ..gold.evaluation import png_to_markdown, write_png_atomically
from .search import study_summary, tune


class TuneConfig(Config):
    """Run config of ``tune_job``: trials per stage, the last session of the tuning window (default: the latest), the stage (0 = both), the seed, an RDB storage URL ('' = SQLite under <home>/params)."""

    trials: int = 20
    through: str = ""
    stage: int = 0
    seed: int = 0
    storage: str = ""


@asset(group_name="tuning", deps=[gold_episodes])
def tuned_params(context: AssetExecutionContext, config: TuneConfig, spymaster: SpymasterResource) -> MaterializeResult:
    """Tuned retrieval, model and blend values (Optuna, two stages, nested walk-forward), written to the next <home>/params/tuned-v<N>.json."""
    cfg = spymaster.config
    results = tune(
        cfg,
        config.trials,
        date.fromisoformat(config.through) if config.through else None,
        config.stage or None,
        config.storage or None,
        config.seed,
        progress=False,
        log=context.log.info,
    )
    metadata: dict[str, object] = {}
    for result in results:
        history, importances = study_summary(result.storage, result.study_name)
        png = _history_png(history, cfg.reports_dir / f"{result.study_name}.png", result.study_name)
        table = pl.DataFrame({"parameter": list(importances), "importance": [round(v, 4) for v in importances.values()]})
        metadata[f"stage{result.stage}/best_bss"] = result.best_bss
        metadata[f"stage{result.stage}/trials"] = result.n_trials
        metadata[f"stage{result.stage}/history"] = MetadataValue.md(png_to_markdown(png))
        metadata[f"stage{result.stage}/importances"] = MetadataValue.md(table.to_pandas().to_markdown(index=False) if table.height else "too few trials")
    final = results[-1]
    return MaterializeResult(
        metadata={
            **metadata,
            "default_bss": final.default_bss,
            "values": MetadataValue.json({k: (list(v) if isinstance(v, tuple) else v) for k, v in final.values.items()}),
            "params_file": MetadataValue.path(str(final.params_file)),
            "storage": final.storage,
        }
    )


def _history_png(history: pl.DataFrame, path, title: str):
    """Optimization history (each trial's walk-forward BSS and the best so far) as a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(history["number"].to_numpy(), history["value"].to_numpy(), "o", ms=3, label="trial")
    ax.plot(history["number"].to_numpy(), history["best_so_far"].to_numpy(), "-", label="best so far")
    ax.set(xlabel="trial", ylabel="walk-forward BSS vs base rate", title=title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return write_png_atomically(fig, path)


tune_job = define_asset_job(
    "tune_job",
    selection=[tuned_params],
    description="Two-stage Optuna tuning of the answer on a nested walk-forward window; writes the next tuned parameter file. Not part of the daily run.",
)
