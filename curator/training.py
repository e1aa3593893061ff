"""The bundled LoRA trainer, small enough to read in one sitting.

    examples  = read_examples(DATA)                    export JSONL (gpt4all, alpaca, sharegpt, openai, ...)
    encoded   = encode(example, tokenizer, template)   chat template; labels only on assistant tokens
    schedule  = step_batches(...)                      length-grouped, seeded: the same order on resume
    model     = peft LoRA on the base (bundled SmolLM2-135M-Instruct by default)
    loop      = AdamW, warmup + cosine, loss over labelled tokens only; val loss every N steps,
                checkpoints every --save-every steps (adapter, optimizer, scheduler, RNG, step)
    output    = PEFT adapter, train_report.json, loss_curve.png, optionally the merged model

Text. Each example is a conversation (messages with role and content). It is rendered with the
base model's own chat template (or ChatML, or GPT4All's raw `prompt\\nresponse<eos>`) and
tokenized once with character offsets; a token is labelled when it starts inside an assistant
turn, from the first character of the answer to the end of the end-of-turn token that closes
it. Every assistant turn of a multi-turn conversation is trained. Sequences are cut at
max_length and nothing is appended after the cut, so EOS is learnt only where an answer really
ends. The pad token is an existing special token other than EOS: no token is added (added
tokens break LoRA-to-GGUF conversion) and padding can never be confused with a real EOS.

Speed. Batches are grouped by length (shuffled megabatches, sorted inside), which removes most
padding without packing unrelated examples into one attention window; and the LM head runs
only on labelled positions (the 49k-wide logits of prompt tokens are never computed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from curator import chat_tokens, formats, libraries, readers
from curator.cache import cache_dir
from curator.config import CPU_DEFAULT_STEPS, TrainConfig
from curator.errors import UserError

BUNDLED_BASE = chat_tokens.BUNDLED
BUNDLED_GGUF = chat_tokens.bundled_gguf().name
IGNORE = -100  # label of a token that is not trained (prompt, padding)

CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# GPT4All's LoRA run: the prompt, a newline, the response and EOS; nothing else.
GPT4ALL_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ m['content'] + eos_token }}"
    "{% else %}{{ m['content'] + '\n' }}{% endif %}{% endfor %}"
)

Progress = Callable[[int, int, str], None]  # (done, total, message), as jobs.runner.Progress
Event = Callable[[dict], None]  # {"kind": "train"|"val", "step", "loss", ...}


# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    id: int  # 1-based line (or record index) in its file
    messages: list[dict]  # [{role, content}], ending with an assistant turn
    prompt: str  # as ingest stores it: last user turn before the final answer
    response: str  # the final answer


def read_examples(path: str | Path) -> tuple[list[Example], list[str]]:
    """The conversations of a JSONL/JSON file in any ingestable format (export files are
    gpt4all, alpaca, sharegpt or openai), and "file:line: reason" for each record skipped
    because it holds none (the rules of `curator ingest`: empty answers, unknown shapes...)."""
    path = Path(path)
    examples, skipped = [], []
    fmt = None
    for batch in readers.read_batches(path):
        skipped += [f"{path}:{line}: {reason}" for line, reason, _ in batch.errors]
        for line, record in zip(batch.lines, batch.values):
            fmt = fmt or formats.detect_format(record)
            try:
                if fmt is None:
                    raise formats.RecordError("not a record of a known format")
                pairs = formats.record_pairs(record, fmt)
            except formats.RecordError as err:
                skipped.append(f"{path}:{line}: {err.reason}")
                continue
            for pair in pairs:  # an oasst tree gives several
                messages = pair.messages or [
                    {"role": "user", "content": pair.prompt},
                    {"role": "assistant", "content": pair.response},
                ]
                examples.append(Example(line, messages, pair.prompt, pair.response))
    if not examples:
        raise UserError(f"{path}: no examples" + (f" ({skipped[0]})" if skipped else ""))
    return examples, skipped


@dataclass
class Dataset:
    train: list[Example]
    val: list[Example]
    val_source: str  # the val file, or "N% of the training file"
    manifest_sha256: str | None
    skipped: list[str]  # records that hold no example, "file:line: reason"


def load_dataset(config: TrainConfig) -> Dataset:
    """DATA is an export directory (train.jsonl, optionally val.jsonl and manifest.json) or
    one file. Without a validation file, val_fraction of the training examples is held out
    by a seeded draw. Validation uses at most val_max examples (a seeded subset)."""
    data = Path(config.data)
    train_file = data / "train.jsonl" if data.is_dir() else data
    if not train_file.exists():
        raise FileNotFoundError(f"no training data at {train_file}")
    manifest = data / "manifest.json" if data.is_dir() else None
    manifest_sha = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest and manifest.exists() else None
    train, skipped = read_examples(train_file)
    val_file = Path(config.val) if config.val else (data / "val.jsonl" if data.is_dir() else None)
    generator = torch.Generator().manual_seed(config.seed)
    if val_file is not None and val_file.exists():
        val, val_skipped = read_examples(val_file)
        val_source, skipped = str(val_file), skipped + val_skipped
    else:
        if config.val:
            raise FileNotFoundError(f"no validation file at {val_file}")
        n_val = max(1, round(len(train) * config.val_fraction)) if config.val_fraction else 0
        if n_val >= len(train):
            raise UserError(f"{train_file}: too few examples ({len(train)}) to hold out validation")
        order = torch.randperm(len(train), generator=generator).tolist()
        held = set(order[:n_val])
        val = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
        val_source = f"{config.val_fraction:.0%} of {train_file}"
    if len(val) > config.val_max:
        keep = sorted(torch.randperm(len(val), generator=generator)[: config.val_max].tolist())
        val = [val[i] for i in keep]
    return Dataset(train, val, val_source, manifest_sha, skipped)


# --- text: template, tokens, labels -------------------------------------------------------


@dataclass
class Encoded:
    id: int
    input_ids: list[int]
    labels: list[int]  # IGNORE outside assistant turns
    truncated: bool


def chat_template(tokenizer, template: str) -> str:
    if template == "gpt4all":
        return GPT4ALL_TEMPLATE
    if template == "chatml" or not tokenizer.chat_template:
        return CHATML_TEMPLATE
    return tokenizer.chat_template


def _render(tokenizer, template: str, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_spans(tokenizer, template: str, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant turn.

    A turn's span starts where rendering the conversation before it with the generation
    prompt ends, and ends after the EOS (or end-of-turn) token that closes it, when the
    template writes one: that token is what teaches the model to stop. Templates must render
    conversations incrementally (each prefix renders to a prefix of the whole); all common
    ones do, and one that does not is an error rather than silently wrong labels.
    """
    text = _render(tokenizer, template, messages, False)
    eos = tokenizer.eos_token
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, template, messages[:i], True) if i else ""
        through = _render(tokenizer, template, messages[: i + 1], False)
        if not (text.startswith(through) and through.startswith(before)):
            raise UserError(
                "the chat template does not render conversations incrementally; use --template chatml or gpt4all"
            )
        turn = through[len(before) :]
        end = turn.rfind(eos) + len(eos) if eos and eos in turn else len(turn)
        spans.append((len(before), len(before) + end))
    return text, spans


def encode(example: Example, tokenizer, template: str, max_length: int) -> Encoded:
    """Token ids and labels: a token is labelled when it starts inside an assistant span."""
    text, spans = assistant_spans(tokenizer, template, example.messages)
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = tokens["input_ids"], tokens["offset_mapping"]
    labels = [IGNORE] * len(ids)
    turn = 0
    for t, (start, _) in enumerate(offsets):
        while turn < len(spans) and start >= spans[turn][1]:
            turn += 1
        if turn < len(spans) and start >= spans[turn][0]:
            labels[t] = ids[t]
    truncated = len(ids) > max_length
    return Encoded(example.id, ids[:max_length], labels[:max_length], truncated)


def encode_all(examples: list[Example], tokenizer, template: str, max_length: int) -> tuple[list[Encoded], int]:
    """Encoded examples that still have a labelled token after truncation, and how many had none."""
    encoded = [encode(e, tokenizer, template, max_length) for e in examples]
    kept = [e for e in encoded if any(label != IGNORE for label in e.labels[1:])]
    return kept, len(encoded) - len(kept)


@dataclass
class Batch:
    ids: list[int]  # example ids, in row order
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(examples: list[Encoded], pad_id: int) -> Batch:
    """Right-pad to the longest row; padding is masked out of attention and labels."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention[row, :n] = 1
    return Batch([e.id for e in examples], input_ids, attention, labels)


def length_grouped(lengths: list[int], batch_size: int, seed: int, megabatch: int = 64) -> list[list[int]]:
    """Indices in batches of similar length: a seeded shuffle, cut into megabatches of
    `megabatch` batches, each sorted by length and cut into batches; the batches are then
    shuffled again so that long and short ones alternate over the epoch."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    span = batch_size * megabatch
    for start in range(0, len(order), span):
        group = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


class Schedule:
    """Which examples each optimizer step uses: epoch e is length_grouped(seed + e), cut into
    steps of grad_accum micro-batches. A pure function of (lengths, settings), so a resumed run
    continues with exactly the batches the interrupted one would have used."""

    def __init__(self, lengths: list[int], batch_size: int, grad_accum: int, seed: int):
        self.lengths, self.batch_size, self.grad_accum, self.seed = lengths, batch_size, grad_accum, seed
        self.steps_per_epoch = math.ceil(math.ceil(len(lengths) / batch_size) / grad_accum)
        self._epoch, self._batches = -1, []

    def step(self, step: int) -> list[list[int]]:
        """Micro-batches (lists of example indices) of 0-based optimizer step `step`."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, length_grouped(self.lengths, self.batch_size, self.seed + epoch)
        return self._batches[index * self.grad_accum : (index + 1) * self.grad_accum]


# --- model ---------------------------------------------------------------------------------


def device_and_dtype() -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when there is a GPU, else CPU in fp32 (CPU bf16 matmuls are slower)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def bundled_base_dir() -> Path:
    """The bundled GGUF, dequantized once into a Hugging Face model directory in the cache.

    Loading the GGUF takes ~20-60 s (dequantizing every tensor); the saved directory loads in
    a few seconds. transformers' GGUF tokenizer conversion gets this model wrong (a CodeLlama
    tokenizer with five added infill tokens, EOS <|im_start|>, a BOS prepended to every text),
    so the tokenizer is curator.chat_tokens' rebuild of the GGUF's own vocabulary and merges
    (the same ids as llama.cpp), with the GGUF's chat template and UNK (<|endoftext|>) as pad.
    """
    target = cache_dir() / "models" / BUNDLED_GGUF.removesuffix(".gguf")
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM

    source = chat_tokens.bundled_gguf()
    tokenizer = chat_tokens.transformers_tokenizer(None)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        os.replace(partial, target)
    except OSError:  # another process finished first: theirs is the same
        shutil.rmtree(partial, ignore_errors=True)
    return target


def resolve_base(base: str | None) -> tuple[str, str]:
    """(name recorded in the report, where to load it from)."""
    if base is None or base == BUNDLED_BASE:
        return f"{BUNDLED_BASE} (bundled {BUNDLED_GGUF}, dequantized)", str(bundled_base_dir())
    path = Path(base).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return base, base  # a hub name: transformers fetches it when online


def distinct_pad(tokenizer) -> int:
    """An existing token to pad with that is not EOS (and not BOS): the tokenizer's own pad
    token if it is distinct, else UNK, else the first other special token. Never adds one."""
    taken = {tokenizer.eos_token_id, tokenizer.bos_token_id}
    candidates = [
        tokenizer.pad_token_id,
        tokenizer.unk_token_id,
        *tokenizer.all_special_ids,
        *sorted(tokenizer.added_tokens_decoder),
    ]
    for token_id in candidates:
        if token_id is not None and token_id not in taken:
            return token_id
    raise UserError("the tokenizer has no special token other than EOS/BOS to pad with")


def load_base(base: str | None, device: torch.device, dtype: torch.dtype):
    """(model, tokenizer, recorded name, location), the tokenizer's pad set to a distinct token."""
    with libraries.quietly():  # our own progress reports say what is loading
        from transformers import AutoModelForCausalLM, AutoTokenizer
    name, location = resolve_base(base)
    tokenizer = AutoTokenizer.from_pretrained(location)
    if not tokenizer.is_fast:
        raise UserError(f"{name}: training needs a fast tokenizer (character offsets)")
    if tokenizer.eos_token is None:
        raise UserError(f"{name}: the tokenizer has no EOS token")
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(distinct_pad(tokenizer))
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype).to(device)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, name, location


def add_lora(model, config: TrainConfig):
    with libraries.quietly():
        from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


# Causal LMs whose logits are exactly lm_head(decoder(...)) (no soft-capping or scaling): for
# them the head runs on labelled positions only. Others take the full forward pass.
_PLAIN_HEAD = {"llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "smollm3"}


def token_losses(model, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, labelled tokens) per row: next-token cross-entropy on labelled tokens."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    input_ids, attention = batch.input_ids.to(device), batch.attention_mask.to(device)
    targets = batch.labels[:, 1:].to(device)
    mask = targets != IGNORE
    rows = torch.arange(len(batch.ids), device=device).unsqueeze(1).expand_as(targets)[mask]
    if base.config.model_type in _PLAIN_HEAD:
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention).last_hidden_state
        logits = base.get_output_embeddings()(hidden[:, :-1][mask])
    else:
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1][mask]
    losses = F.cross_entropy(logits.float(), targets[mask], reduction="none")
    per_row = torch.zeros(len(batch.ids), device=device, dtype=torch.float32).index_add_(0, rows, losses)
    return per_row, mask.sum(dim=1)


@torch.no_grad()
def example_losses(
    model,
    encoded: list[Encoded],
    pad_id: int,
    device: torch.device,
    batch_size: int = 16,
    done: Callable[[int], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Mean loss over each example's labelled tokens (NaN when it has none), and their count.
    Longest first, so batches hold similar lengths; done(n) after each batch."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].input_ids))
    sums, counts = [0.0] * len(encoded), [0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        loss, n = token_losses(model, collate([encoded[i] for i in chunk], pad_id), device)
        for i, s, c in zip(chunk, loss.tolist(), n.tolist()):
            sums[i], counts[i] = s, c
        if done:
            done(start + len(chunk))
    model.train(was_training)
    return [s / c if c else math.nan for s, c in zip(sums, counts)], counts


def mean_loss(losses: list[float], counts: list[int]) -> float:
    """Token-weighted mean: the validation loss (perplexity = exp of it)."""
    return sum(loss * c for loss, c in zip(losses, counts) if c) / max(1, sum(counts))


# --- the loop -----------------------------------------------------------------------------


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))


def last_checkpoint(out: Path) -> Path | None:
    steps = [
        (int(p.name.split("-")[1]), p)
        for p in out.glob("checkpoint-*")
        if p.name.split("-")[1].isdigit() and (p / "state.pt").exists()
    ]
    return max(steps)[1] if steps else None


def _save_checkpoint(out: Path, step: int, model, optimizer, scheduler, history: dict) -> Path:
    """DIR/checkpoint-STEP: the adapter (loadable by peft) and state.pt (optimizer,
    scheduler, RNG, step, history). Written aside and renamed, so kill -9 never leaves a
    half-written checkpoint that resume would pick up."""
    final = out / f"checkpoint-{step}"
    partial = out / f".checkpoint-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": history,
        },
        partial / "state.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def _load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[int, dict]:
    with libraries.quietly():
        from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(path / "adapter_model.safetensors"))
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["step"], state["history"]


@dataclass
class Run:
    """A run's output directory and what is in it."""

    out: Path
    config_file: Path = field(init=False)
    order_log: Path = field(init=False)  # one JSON line per optimizer step: {"step", "ids"}
    report_file: Path = field(init=False)

    def __post_init__(self):
        self.config_file = self.out / "train_config.json"
        self.order_log = self.out / "data_order.jsonl"
        self.report_file = self.out / "train_report.json"


def prepare_out(config: TrainConfig, resume: bool) -> tuple[Run, Path | None]:
    """The output directory, and the checkpoint to resume from (None: start fresh). A directory
    that already holds a run is only reused with resume, and only with the same settings."""
    run = Run(Path(config.out))
    if run.config_file.exists():
        if not resume:
            raise UserError(
                f"{run.out} already holds a training run: pass --resume to continue it, or choose another --out"
            )
        if run.report_file.exists():
            raise UserError(f"{run.out} is a finished run: nothing to resume")
        before = json.loads(run.config_file.read_text())
        changed = sorted(k for k, v in config.order_settings().items() if before.get(k) != _jsonable(v))
        if changed:
            raise UserError(f"cannot resume {run.out} with different settings: {', '.join(changed)}")
        return run, last_checkpoint(run.out)
    run.out.mkdir(parents=True, exist_ok=True)
    run.config_file.write_text(json.dumps(_jsonable(config.order_settings()), indent=2))
    return run, None


def _jsonable(value):
    return json.loads(json.dumps(value))


def train(
    config: TrainConfig, *, resume: bool = False, progress: Progress | None = None, on_event: Event | None = None
) -> dict:
    """Train a LoRA adapter on config.data into config.out; returns the report (also written
    to train_report.json). on_event receives every logged train and validation loss."""
    progress = progress or (lambda done, total, message: None)
    on_event = on_event or (lambda event: None)
    run, checkpoint = prepare_out(config, resume)
    torch.manual_seed(config.seed)
    device, dtype = device_and_dtype()
    progress(0, 1, "loading the base model")
    model, tokenizer, base_name, base_location = load_base(config.base, device, dtype)
    pad_id = tokenizer.pad_token_id
    data = load_dataset(config)
    template = chat_template(tokenizer, config.template)
    progress(0, 1, f"tokenizing {len(data.train):,} + {len(data.val):,} examples")
    train_set, dropped = encode_all(data.train, tokenizer, template, config.max_length)
    val_set, _ = encode_all(data.val, tokenizer, template, config.max_length)
    if not train_set:
        raise UserError(f"no training example keeps an answer token within --max-length {config.max_length}")
    schedule = Schedule([len(e.input_ids) for e in train_set], config.batch_size, config.grad_accum, config.seed)
    total = config.max_steps or (config.epochs or 1) * schedule.steps_per_epoch
    if config.max_steps is None and config.epochs is None and device.type == "cpu":
        total = min(total, CPU_DEFAULT_STEPS)
    warmup = max(1, round(config.warmup * total))
    eval_every = config.eval_every or max(1, total // 4)

    model = add_lora(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def validate() -> float:
        with autocast:
            return mean_loss(*example_losses(model, val_set, pad_id, device, config.batch_size * 2))

    history = {"train": [], "val": [], "tokens": 0, "seconds": 0.0}
    start = 0
    if checkpoint is not None:
        start, history = _load_checkpoint(checkpoint, model, optimizer, scheduler)
    # resumed_from: the checkpoint's step (losses logged after it are logged again), None: fresh.
    on_event(
        {
            "kind": "start",
            "resumed_from": start if checkpoint else None,
            "out": str(run.out),
            "base": base_name,
            "data": config.data,
        }
    )
    if not history["val"] and val_set:
        progress(0, total, "initial validation loss")
        loss = validate()
        history["val"].append({"step": 0, "loss": loss})
        on_event({"kind": "val", "step": 0, "loss": loss})

    with open(run.order_log, "a") as order_log:
        for step in range(start, total):
            began = time.perf_counter()
            micro = [collate([train_set[i] for i in indices], pad_id) for indices in schedule.step(step)]
            labelled = sum(int((b.labels[:, 1:] != IGNORE).sum()) for b in micro)
            step_loss = 0.0
            for batch in micro:
                with autocast:
                    losses, _ = token_losses(model, batch, device)
                    loss = losses.sum() / labelled  # token-weighted over the whole step
                loss.backward()
                step_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            tokens = sum(b.tokens for b in micro)
            history["tokens"] += tokens
            history["seconds"] += time.perf_counter() - began
            history["train"].append({"step": done, "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
            order_log.write(json.dumps({"step": done, "ids": [i for b in micro for i in b.ids]}) + "\n")
            order_log.flush()
            rate = history["tokens"] / history["seconds"]
            on_event(
                {"kind": "train", "step": done, "loss": step_loss, "tokens": tokens, "lr": scheduler.get_last_lr()[0]}
            )
            if val_set and (done % eval_every == 0 or done == total):
                progress(done, total, f"loss {step_loss:.3f} · {rate:,.0f} tok/s · validating")
                loss = validate()
                history["val"].append({"step": done, "loss": loss})
                on_event({"kind": "val", "step": done, "loss": loss})
            val_text = f" · val {history['val'][-1]['loss']:.3f}" if history["val"] else ""
            progress(done, total, f"loss {step_loss:.3f}{val_text} · {rate:,.0f} tok/s")
            if config.save_every and done % config.save_every == 0 and done < total:
                _save_checkpoint(run.out, done, model, optimizer, scheduler, history)

    model.save_pretrained(run.out)
    tokenizer.save_pretrained(run.out)
    merged = None
    if config.merge:
        merged = run.out / "merged"
        model.merge_and_unload().save_pretrained(merged)
        tokenizer.save_pretrained(merged)
    report = _report(
        config,
        data,
        base_name,
        base_location,
        history,
        total,
        len(train_set),
        len(val_set),
        dropped,
        tokenizer,
        device,
        dtype,
        warmup,
        eval_every,
        merged,
    )
    run.report_file.write_text(json.dumps(report, indent=2))
    plot_losses(history, run.out / "loss_curve.png", base_name)
    return report


def _report(
    config,
    data,
    base_name,
    base_location,
    history,
    total,
    n_train,
    n_val,
    dropped,
    tokenizer,
    device,
    dtype,
    warmup,
    eval_every,
    merged,
) -> dict:
    val = history["val"]
    return {
        "base": base_name,
        "base_path": base_location,
        "data": str(Path(config.data).resolve()),
        "val_source": data.val_source,
        "manifest_sha256": data.manifest_sha256,
        "steps": total,
        "epochs_done": round(total * config.batch_size * config.grad_accum / n_train, 3),
        "examples_train": n_train,
        "examples_val": n_val,
        "examples_dropped": dropped,  # no answer token left within max_length
        "records_skipped": len(data.skipped),
        "records_skipped_first": data.skipped[:5],
        "val_loss_initial": val[0]["loss"] if val else None,
        "val_loss_final": val[-1]["loss"] if val else None,
        "val_perplexity_initial": math.exp(val[0]["loss"]) if val else None,
        "val_perplexity_final": math.exp(val[-1]["loss"]) if val else None,
        "train_loss_final": history["train"][-1]["loss"] if history["train"] else None,
        "tokens": history["tokens"],
        "train_seconds": round(history["seconds"], 2),
        "tokens_per_s": history["tokens"] / history["seconds"] if history["seconds"] else None,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "pad_token": tokenizer.pad_token,
        "eos_token": tokenizer.eos_token,
        "hyperparameters": {
            "lr": config.lr,
            "schedule": "linear warm-up, cosine to 0.1",
            "warmup_steps": warmup,
            "optimizer": "AdamW",
            "weight_decay": 0.0,
            "grad_clip": 1.0,
            "lora_r": config.lora_r,
            "lora_alpha": config.lora_alpha,
            "lora_dropout": config.lora_dropout,
            "targets": list(config.targets),
            "max_length": config.max_length,
            "batch_size": config.batch_size,
            "grad_accum": config.grad_accum,
            "epochs": config.epochs,
            "max_steps": config.max_steps,
            "template": config.template,
            "seed": config.seed,
            "eval_every": eval_every,
            "val_max": config.val_max,
        },
        "merged": str(merged) if merged else None,
        "history": {"train": history["train"], "val": history["val"]},
    }


def read_report(out: str | Path) -> dict:
    path = Path(out) / "train_report.json"
    if not path.exists():
        raise FileNotFoundError(f"{out} has no train_report.json (not a finished `curator train` run)")
    return json.loads(path.read_text())


def plot_losses(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [h["step"] for h in history["train"]]
    losses = [h["loss"] for h in history["train"]]
    ax.plot(steps, losses, color="#9bb", linewidth=0.8, label="train (per step)")
    if len(losses) > 4:
        smooth, avg = [], losses[0]
        for value in losses:
            avg = 0.9 * avg + 0.1 * value
            smooth.append(avg)
        ax.plot(steps, smooth, color="#167", linewidth=1.5, label="train (smoothed)")
    if history["val"]:
        ax.plot(
            [h["step"] for h in history["val"]],
            [h["loss"] for h in history["val"]],
            "o-",
            color="#c52",
            label="validation",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
