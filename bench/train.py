"""Training benchmark: `curator train`'s tokens/s and peak RSS against a plain Hugging Face
`Trainer` + peft loop on the same model, data and settings, in the same run.

    .venv/bin/python bench/train.py                      # 128 Alpaca pairs, 12 steps of 4, max length 256
    .venv/bin/python bench/train.py --pairs 512 --steps 40 --batch-size 8

Both sides train the bundled SmolLM2-135M-Instruct with the same LoRA (r 8, alpha 32, dropout
0.1, q_proj+v_proj), learning rate, batch size and number of steps, on the same token
sequences and labels (the examples are encoded once, by curator.training.encode, so both
sides see identical tokens, prompt tokens masked). What differs is the loop: the baseline is
what a plain script does (Trainer, DataCollatorForSeq2Seq padding, random batches, the model's
own loss over full logits); curator groups batches by length and runs the LM head on labelled
positions only. Each side runs in its own child process, so each peak RSS is its own.
tokens/s counts real (non-padding) tokens over the time spent in training steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "alpaca_5000.json"


def write_data(pairs: int, directory: Path) -> Path:
    records = [r for r in json.loads(DATA.read_text()) if r["output"].strip()][:pairs]
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:8]))
    return directory


def run_curator(args) -> dict:
    from curator import training

    config = training.TrainConfig(
        data=args.data,
        out=str(Path(args.work) / "curator-run"),
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lr=args.lr,
        val_max=8,
        eval_every=args.steps,
        seed=args.seed,
    )
    report = training.train(config)
    losses = [h["loss"] for h in report["history"]["train"]]
    return {"tokens": report["tokens"], "seconds": report["train_seconds"], "loss_mean": sum(losses) / len(losses)}


def run_hf(args) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from curator import training

    torch.manual_seed(args.seed)
    config = training.TrainConfig(data=args.data, out=args.work, lr=args.lr, seed=args.seed)
    device, dtype = training.device_and_dtype()
    model, tokenizer, _, _ = training.load_base(None, device, dtype)
    template = training.chat_template(tokenizer, config.template)
    encoded, _ = training.encode_all(
        training.read_examples(Path(args.data) / "train.jsonl")[0], tokenizer, template, args.max_length
    )
    rows = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels} for e in encoded]
    model = training.add_lora(model, config)
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=training.IGNORE)
    counted = {"tokens": 0, "seconds": 0.0}

    def collate(features):
        batch = pad(features)
        counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.began = time.perf_counter()

        def on_step_end(self, *_, **__):
            counted["seconds"] += time.perf_counter() - self.began

    arguments = TrainingArguments(
        output_dir=str(Path(args.work) / "hf-run"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=1,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=args.steps,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        seed=args.seed,
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda",
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=rows, data_collator=collate, callbacks=[StepTimer()])
    result = trainer.train()
    return {"tokens": counted["tokens"], "seconds": counted["seconds"], "loss_mean": result.training_loss}


def child(side: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--side",
        side,
        "--data",
        args.data,
        "--work",
        args.work,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--side", choices=("curator", "hf"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # a child: train one side, print its figures as the last line
        figures = (run_curator if args.side == "curator" else run_hf)(args)
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(figures))
        return 0

    from curator import training

    training.bundled_base_dir()  # the one-time GGUF conversion is no side's cost
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        args.data = str(write_data(args.pairs, Path(work)))
        sides = {side: child(side, args) for side in ("hf", "curator")}
    for figures in sides.values():
        figures["tokens_per_s"] = figures["tokens"] / figures["seconds"]
    ratio = sides["curator"]["tokens_per_s"] / sides["hf"]["tokens_per_s"]
    print(
        f"SmolLM2-135M-Instruct LoRA, {args.pairs} Alpaca pairs, {args.steps} steps of {args.batch_size}, "
        f"max length {args.max_length}, device {training.device_and_dtype()[0]}"
    )
    for name, label in (("hf", "HF Trainer + peft"), ("curator", "curator train")):
        f = sides[name]
        print(
            f"{label:18} {f['tokens']:8,} tokens  {f['seconds']:8.1f} s  {f['tokens_per_s']:8,.0f} tokens/s  "
            f"peak RSS {f['peak_rss_mib']:,} MiB  mean train loss {f['loss_mean']:.3f}"
        )
    print(
        f"curator / HF: {ratio:.2f}x tokens/s (goal >= 1.0x); "
        f"peak RSS {sides['curator']['peak_rss_mib'] / sides['hf']['peak_rss_mib']:.2f}x"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "sides": sides,
                    "ratio": round(ratio, 3),
                    **{k: getattr(args, k) for k in ("pairs", "steps", "batch_size", "max_length")},
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
