"""Settings the CLI shows and checks before any heavy library loads: what a LoRA run computes
(TrainConfig, its chat templates) and the GGUF types `curator quantize` writes. Importing this
module imports no torch, transformers or gguf; curator.training and curator.gguf_export use
these definitions, and the CLI takes its defaults and choices from them.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from curator.errors import UserError

TEMPLATES = ("model", "chatml", "gpt4all")
# Without --epochs or --max-steps a run is one epoch, but on a CPU at most this many steps:
# 60 steps of 8 short pairs take ~5 minutes on 2 laptop cores (README: figures).
CPU_DEFAULT_STEPS = 60
# The GGUF types `curator quantize` writes (f16 and the llama.cpp block quantizations).
GGUF_TYPES = ("f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")


@dataclass
class TrainConfig:
    """Everything that decides what a run computes. Defaults: GPT4All's LoRA shape (r 8,
    alpha 32, dropout 0.1 on q_proj+v_proj). lr 1e-3: GPT4All's 5e-5 was for 7B at batch 32;
    on the bundled 135M model at batch 8, 20 steps on the demo set took validation loss from
    2.88 to 2.10 at 1e-3 and only to 2.65 at 2e-4 (README). Bases of billions of parameters
    want less (1e-4 to 2e-4)."""

    data: str
    out: str
    base: str | None = None  # None: the bundled SmolLM2-135M-Instruct
    epochs: int | None = None  # default 1 when max_steps is not given either
    max_steps: int | None = None
    lr: float = 1e-3
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    max_length: int = 512
    batch_size: int = 8
    grad_accum: int = 1
    val: str | None = None  # a validation file; default DATA/val.jsonl, else a split
    val_fraction: float = 0.05  # held out of the training file when there is no val file
    val_max: int = 64  # validation examples evaluated (a fixed, seeded subset):
    # more would cost as much as the training itself on a CPU
    template: str = "model"
    warmup: float = 0.05  # fraction of the steps with a linear warm-up
    eval_every: int | None = None  # default: four evaluations over the run, after the initial one
    save_every: int = 0  # 0: no intermediate checkpoints
    seed: int = 42
    merge: bool = False

    def __post_init__(self):
        self.targets = tuple(self.targets)
        # Absolute paths: the run's settings are compared on --resume and read by `curator score`,
        # maybe from another directory.
        self.data, self.out = str(Path(self.data).resolve()), str(Path(self.out).resolve())
        if self.val:
            self.val = str(Path(self.val).resolve())
        if self.base and Path(self.base).expanduser().exists():
            self.base = str(Path(self.base).expanduser().resolve())
        if self.template not in TEMPLATES:
            raise UserError(f"unknown template {self.template!r}; choose one of {', '.join(TEMPLATES)}")
        if self.epochs is not None and self.max_steps is not None:
            raise UserError("give --epochs or --max-steps, not both")
        for name in ("max_length", "batch_size", "grad_accum", "lora_r", "val_max"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.val_fraction < 1:
            raise UserError("val-fraction must be in [0, 1)")

    def order_settings(self) -> dict:
        """What a resumed run must share with the interrupted one to continue it exactly."""
        return {k: v for k, v in asdict(self).items() if k not in ("out", "save_every", "merge")}


def train_defaults() -> dict:
    """{field: default} of TrainConfig's fields that have one (what `curator train --help` shows)."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
