"""Per-example loss under the base model and under the tuned one (`curator score RUN_DIR`).

Each example is rendered, labelled and truncated exactly as the run trained on it, and its loss
is the mean next-token loss over its assistant tokens. Both models are one: the base with the
run's adapter, scored once with the adapter and once with it switched off. A pair the tuned
model finds much easier than the base did was learnt; one still hard after training is worth a
look (mislabelled, out of place, or simply rare).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from curator import libraries, training


@dataclass
class RunData:
    config: training.TrainConfig
    report: dict
    examples: list[training.Example]
    trained: list[bool]  # in the training split (else validation)


def run_data(run_dir: str | Path) -> RunData:
    """A finished run's settings, report, and every example of its data (training and
    validation split, the whole of each)."""
    run = training.Run(Path(run_dir))
    report = training.read_report(run.out)
    settings = json.loads(run.config_file.read_text())
    settings["val_max"] = 1 << 62
    config = training.TrainConfig(out=str(run.out), **settings)
    data = training.load_dataset(config)
    return RunData(config, report, data.train + data.val, [True] * len(data.train) + [False] * len(data.val))


@dataclass
class Scores:
    loss_base: list[float]
    loss_tuned: list[float]
    tokens: list[int]  # assistant tokens each loss averages over (0: none within max_length)


def score(
    run: RunData, examples: list[training.Example], batch_size: int = 16, progress: training.Progress | None = None
) -> Scores:
    """Losses of `examples` (some of run.examples) under the base and the tuned model."""
    import torch

    with libraries.quietly():
        from peft import PeftModel

    progress = progress or (lambda done, total, message: None)
    device, dtype = training.device_and_dtype()
    progress(0, 1, "loading the model")
    base, tokenizer, _, _ = training.load_base(run.config.base, device, dtype)
    model = PeftModel.from_pretrained(base, str(run.config.out)).to(device)
    template = training.chat_template(tokenizer, run.config.template)
    encoded = [training.encode(e, tokenizer, template, run.config.max_length) for e in examples]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    pad = tokenizer.pad_token_id
    n = len(encoded)
    with autocast, model.disable_adapter():
        loss_base, tokens = training.example_losses(
            model, encoded, pad, device, batch_size, lambda done: progress(done, 2 * n, "base model")
        )
    with autocast:
        loss_tuned, _ = training.example_losses(
            model, encoded, pad, device, batch_size, lambda done: progress(n + done, 2 * n, "tuned model")
        )
    return Scores(loss_base, loss_tuned, tokens)
