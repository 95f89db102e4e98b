"""Stage ``train@<separator>``: train a separator on the label table ``separate.labels`` picks."""

from __future__ import annotations

import logging

from torch import nn

from selfrefine import distributed, paths, plots
from selfrefine.config import Params
from selfrefine.data.labels import read_label_table, read_probabilities
from selfrefine.errors import UserError
from selfrefine.models.checkpoints import save_checkpoint
from selfrefine.models.registry import check_block, loss
from selfrefine.outputs import atomic_dir, file_digest, write_json
from selfrefine.stages.common import stem_store
from selfrefine.stages.entry import main
from selfrefine.training.loop import LoopResult, live_folder, train
from selfrefine.training.separation import SeparatorTraining, model_kwargs

log = logging.getLogger("selfrefine.stages.train")  # not __name__: run as __main__


def fit(params: Params, name: str, labels: str, run_name: str) -> tuple[SeparatorTraining, nn.Module, LoopResult]:
    """Train separator ``name`` on label table ``labels`` with ``separate``'s pools and seed (checkpoint and curves
    under ``run_name``); also what stage ``filter@<name>`` trains its scorer with."""
    if name not in params.separators:
        raise UserError(f"separators.{name}: no such block in params.yaml; add one (model and train) for '{name}'")
    block = params.separators[name]
    check_block(name, block.model)
    loss(name, block.train.loss)
    table = paths.label_table(labels)
    paths.require(table)
    stems = read_label_table(table)
    kwargs = model_kwargs(block.model, params.audio.sample_rate, params.audio.channels, block.train.segment_seconds)
    seed = params.seed if params.separate.seed is None else params.separate.seed
    store = stem_store(params, [s.path for s in stems])
    task = SeparatorTraining(
        name,
        kwargs,
        stems,
        store,
        params.separate.pool,
        block.train,
        seed,
        file_digest(table) + store.digest(),
        params.launch.num_workers,
        params.separate.keep,
        read_probabilities(table) if params.separate.keep < 1 else None,
    )
    with live_folder(paths.curves(run_name)) as live_dir:
        model, result = train(task, seed, paths.CHECKPOINTS / f"{run_name}.pt", live_dir)
    return task, model, result


def run(params: Params, name: str) -> dict[str, float] | None:
    """Train separator ``name``; write its checkpoint, curves and ``metrics/train/<name>.json``."""
    task, model, result = fit(params, name, params.separate.labels, f"train_{name}")
    if not distributed.is_main():
        return None  # rank 0 writes the outputs
    block, kwargs = params.separators[name], task.kwargs
    seed = params.seed if params.separate.seed is None else params.separate.seed
    pools = task.pool_sizes()
    model_path, figure = paths.separator_model(name), paths.training_plot(name)
    with atomic_dir(model_path.parent) as folder:  # declared folders: no temporary file is ever seen in them
        save_checkpoint(
            folder / model_path.name,
            model,
            name,
            kwargs,
            labels=params.separate.labels,
            seed=seed,
            pools=pools,
            loss=block.train.loss,
            steps=block.train.steps,
            history=result.history,
        )
    with atomic_dir(figure.parent) as folder:
        plots.training_curves(
            folder / figure.name, result.history, f"{name} trained on {params.separate.labels} labels"
        )
    first, last = result.history[0], result.history[-1]
    parameters = sum(p.numel() for p in model.parameters())
    write_json(
        paths.metrics("train", name),
        {
            "labels": params.separate.labels,
            "pools": pools,
            "parameters": parameters,
            "val_loss_first": first["val_loss"],
            "val_loss": last["val_loss"],
            "val_sdr": last["val_sdr"],
        },
    )
    log.info(
        "train@%s: %d params, val loss %.4f -> %.4f, val SDR %.2f dB",
        name,
        parameters,
        first["val_loss"],
        last["val_loss"],
        last["val_sdr"],
    )
    return {"train": result.seconds}


if __name__ == "__main__":
    main(run, ("name", "separator (a block of separators in params.yaml)"), ranks=True)
