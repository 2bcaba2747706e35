"""One candidate: a LoRA adapter trained with TRL (SFT, DPO or ORPO, see trainers.py) on the first
n_samples rows (or preference pairs), from scratch or continuing `init_adapter`.

`train()` is what both `harness train` and a sweep trial call. The output directory appears only
when complete (published whole); it holds the peft adapter, loadable by peft and vLLM, and
train.json with everything needed to reproduce and cost the run. A run that trained but produced
no usable adapter leaves `<out>.failed.json` with the same record and its reason instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import shutil
import time
from importlib import metadata
from pathlib import Path

from harness.config import TrainConfig
from harness.errors import UserError
from harness.models import BaseModel, check_adapter, load_causal_lm, load_tokenizer
from harness.runtime.environment import bf16_supported, device
from harness.runtime.files import publish_dir, write_json
from harness.runtime.hashing import sha256_file, sha256_json, sha256_tree
from harness.runtime.processes import raise_if_interrupted
from harness.store import paths
from harness.store.paths import TRAIN_RECORD
from harness.train.data import training_split
from harness.train.trainers import check_method_available, make_trainer

log = logging.getLogger(__name__)


class TrainingFailed(Exception):
    """Training ran but produced no usable adapter (NaN/inf loss, out of memory).

    `record` is the train.json record with its failure; `record_path` is where it was written."""

    def __init__(self, reason: str, record: dict, record_path: Path | None = None):
        self.reason, self.record, self.record_path = reason, record, record_path
        super().__init__(reason)


def failure_record_path(out: Path) -> Path:
    return out.with_name(out.name + ".failed.json")


def resolve_dtype(dtype: str) -> str:
    if dtype == "auto":
        return "bfloat16" if bf16_supported() else "float32"
    if dtype == "bfloat16" and not bf16_supported():
        raise UserError("--dtype bfloat16: this CPU has no native bf16 (AVX512-BF16/AMX); use float32 or auto")
    return dtype


def _versions() -> dict:
    return {name: metadata.version(name) for name in ("torch", "transformers", "peft", "trl")}


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _finite_loss_callback(record: dict):
    from transformers import TrainerCallback

    class FiniteLoss(TrainerCallback):
        """Keeps the loss curve and stops at the first NaN/inf instead of training on garbage."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                record["loss_curve"].append([state.global_step, loss])
                if state.global_step % 5 == 0 or state.global_step == state.max_steps:
                    log.info("step %d/%d loss %.4f", state.global_step, state.max_steps, loss)
                # Preference methods: chosen minus rejected implicit reward (DPO: β·log-ratio vs the reference).
                if "rewards/margins" in logs:
                    record["reward_margin"] = float(logs["rewards/margins"])
                if not math.isfinite(loss):
                    record["failure"] = (f"loss became {loss} at step {state.global_step} (NaN/inf weights or data, too high a "
                                         "learning rate, or a max_seq_len too short to keep any answer token)")
                    control.should_training_stop = True

    return FiniteLoss()


def _interrupt_callback():
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        """Raises a SIGTERM/Ctrl-C that a library swallowed while the trainer was built, at the next step."""

        def on_train_begin(self, args, state, control, **kwargs):
            raise_if_interrupted()

        def on_step_end(self, args, state, control, **kwargs):
            raise_if_interrupted()

    return StopOnSignal()


def _qlora_config():
    import torch

    if not torch.cuda.is_available():
        raise UserError("--qlora: 4-bit QLoRA needs a CUDA GPU (bitsandbytes); this machine has none")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)


def preflight(cfg: TrainConfig, out: Path) -> tuple[list[dict], list[dict]]:
    """Before any model loads: `out` can be created, the data parses and has enough rows, the dtype
    runs here. Returns the training and held-out rows."""
    if out.exists():
        raise UserError(f"--out {out}: already exists; remove it or choose another directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its folder: {err.strerror}") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {out.parent} is not writable")
    resolve_dtype(cfg.dtype)
    check_method_available(cfg.method)
    if cfg.init_adapter is not None and not (cfg.init_adapter / "adapter_config.json").is_file():
        raise UserError(f"--init-adapter {cfg.init_adapter}: no adapter_config.json (not a peft adapter directory)")
    return training_split(cfg.training_file, cfg.n_samples, preference=cfg.uses_pairs)


def train(base: BaseModel, cfg: TrainConfig, out: Path) -> dict:
    """Train one adapter into `out`; return the train.json record. Raises TrainingFailed, UserError.

    Everything that can be checked before the model loads is checked first (exit 2 in seconds)."""
    out = Path(out)
    train_rows, heldout_rows = preflight(cfg, out)
    dtype = resolve_dtype(cfg.dtype)
    quantization = _qlora_config() if cfg.qlora else None

    init = check_adapter(cfg.init_adapter, base, f"--init-adapter {cfg.init_adapter}") if cfg.init_adapter else None

    started = time.perf_counter()
    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, "float32", quantization)
    if init is None:
        check_target_modules(model, cfg, base)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    if init is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(cfg.init_adapter), is_trainable=True)
    data = cfg.training_file
    record = {
        "status": "running",
        "params": cfg.model_dump(mode="json"),
        "method": cfg.method,
        "beta": cfg.beta if cfg.uses_pairs else None,
        "init_adapter": None if init is None else {"path": str(cfg.init_adapter), "r": init.get("r"), "lora_alpha": init.get("lora_alpha")},
        "base": {"spec": base.spec, "identity": base.identity},
        "data": {"path": str(data), "sha256": sha256_file(data), "n_samples": len(train_rows), "heldout_rows": len(heldout_rows),
                 "rows": "preference pairs" if cfg.uses_pairs else "prompt/completion"},
        "dtype": dtype,
        "device": device(),
        "loss_curve": [],
        "versions": _versions(),
    }
    try:
        with publish_dir(out) as tmp:
            trainer = make_trainer(model, tokenizer, cfg, dtype, train_rows, heldout_rows, tmp / "trainer", [_finite_loss_callback(record), _interrupt_callback()])
            if len(trainer.train_dataset) == 0:  # TRL drops rows that keep no answer token after truncation
                raise UserError(f"--max-seq-len {cfg.max_seq_len}: no row of {cfg.data} keeps an answer token within it "
                                "(the prompt alone is longer); raise max_seq_len")
            record["load_s"] = round(time.perf_counter() - started, 3)
            _fit(trainer, base, cfg, dtype, bool(heldout_rows), record)
            record["wall_s"] = round(time.perf_counter() - started, 3)
            record["status"] = "ok"
            shutil.rmtree(tmp / "trainer", ignore_errors=True)
            # The trained adapter's files at the top of `out` (not DPO's frozen "ref" copy of an init adapter).
            trainer.model.save_pretrained(tmp, selected_adapters=["default"])
            write_json(tmp / TRAIN_RECORD, record)
    except TrainingFailed as failure:
        failure.record_path = write_json(failure_record_path(out), failure.record)
        raise
    return record


def _fit(trainer, base: BaseModel, cfg: TrainConfig, dtype: str, heldout: bool, record: dict) -> None:
    """Train, with the held-out loss before and after; fills `record`. Raises TrainingFailed."""
    # LoRA's B starts at zero, so the loss before training is the base model's held-out loss.
    t0 = time.perf_counter()
    before = _base_heldout_loss(trainer, base, cfg, dtype, record["data"]) if heldout else None
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        trainer.train()
    except (RuntimeError, MemoryError) as err:
        if isinstance(err, MemoryError) or "out of memory" in str(err).lower() or "can't allocate memory" in str(err):
            record["failure"] = (
                f"out of memory at batch_size={cfg.batch_size}, max_seq_len={cfg.max_seq_len}: "
                "lower --batch-size (raise --grad-accum to keep the effective batch) or --max-seq-len"
            )
        else:
            raise
    train_s = time.perf_counter() - t0
    tokens = int(trainer.state.num_input_tokens_seen)
    record.update(
        train_s=round(train_s, 3),
        steps=trainer.state.global_step,
        tokens_seen=tokens,
        tokens_per_s=round(tokens / train_s, 1) if train_s else None,
        peak_memory_mb=round(_peak_memory_mb(), 1),
    )
    if "failure" in record:
        record["status"] = "failed"
        raise TrainingFailed(record["failure"], record)
    t0 = time.perf_counter()
    after = trainer.evaluate() if heldout else {}
    record["heldout_loss"] = {"init_adapter" if cfg.init_adapter else "base": before, "adapter": _finite(after.get("eval_loss"))}
    if cfg.uses_pairs:
        record["reward_margin"] = {"train": record.pop("reward_margin", None), "heldout": _finite(after.get("eval_rewards/margins"))}
    record["heldout_eval_s"] = round(eval_s + time.perf_counter() - t0, 3)


def check_target_modules(model, cfg: TrainConfig, base: BaseModel) -> None:
    """Every named target module exists in the base (peft matches a name as the last part of a module path)."""
    if cfg.target_modules == "all-linear":
        return
    import torch

    names = [n for n, _ in model.named_modules()]
    missing = [m for m in cfg.target_modules if not any(n == m or n.endswith("." + m) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)})
        raise UserError(f"--target-modules {','.join(missing)}: no such module in base {base.spec} "
                        f"(its linear layers: {', '.join(linear)}; or all-linear)")


def _finite(value) -> float | None:
    """None for a metric that is missing or not finite (no held-out row kept an answer token within max_seq_len)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _base_heldout_loss(trainer, base: BaseModel, cfg: TrainConfig, dtype: str, data: dict) -> float | None:
    """The held-out loss before training (the base model's, or the init adapter's): the same for every
    trial of a sweep with the same method, so computed once and kept."""
    init = sha256_tree(cfg.init_adapter, ("adapter_config.json", "*.safetensors", "*.bin")) if cfg.init_adapter else None
    key = sha256_json({"base": base.identity, "data": data["sha256"], "heldout": data["heldout_rows"], "dtype": dtype,
                       "max_seq_len": cfg.max_seq_len, "batch_size": cfg.batch_size, "qlora": cfg.qlora, "device": device(),
                       "method": cfg.method, "beta": cfg.beta if cfg.uses_pairs else None, "init": init})
    path = paths.heldout_loss_file(key)
    try:
        return json.loads(path.read_text())["eval_loss"]
    except (OSError, ValueError, KeyError):
        pass
    loss = _finite(trainer.evaluate().get("eval_loss"))
    write_json(path, {"eval_loss": loss})  # concurrent workers never read half a file
    return loss
