"""Base-model specs: `default`, a `.gguf` file, a local Hugging Face directory, or a hub id.

A GGUF is dequantised once into a safetensors directory under HARNESS_HOME/models (about 18 s for
SmolLM2); every later load reads that directory (0.2 s). Every resolved base carries an identity
derived from its weights (config and weight files), which candidate hashes build on: the same
model named two ways (`default` and the directory `harness models prepare default` prints) is one
base. Everything that can be checked without loading weights is checked here (exit 2).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.runtime import assets
from harness.runtime.environment import device, is_offline
from harness.runtime.files import exclusive, publish_dir, read_json
from harness.runtime.hashing import sha256_file, sha256_tree
from harness.store import paths
from harness.store.paths import MERGE_RECORD, TRAIN_RECORD

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".harness-complete"


@dataclass(frozen=True)
class BaseModel:
    spec: str  # what the user wrote
    path: str  # what from_pretrained takes: a local directory or a hub id
    identity: str  # content identity: "dir:<sha of config and weights>" or "hub:<id>@<revision>"


def resolve_base(spec: str, prepare: bool = True) -> BaseModel:
    """Turn a user's spec into a loadable BaseModel, converting a GGUF on first use.

    `prepare=False` checks only what can be checked here and now: nothing is converted, nothing is
    asked of the hub (`harness validate`, `harness doctor`)."""
    if spec == "default":
        return _from_gguf(spec, assets.SMOLLM2.path(), prepare)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"--base {spec}: no such GGUF file")
        return _from_gguf(spec, path, prepare)
    if path.is_dir():
        return BaseModel(spec, str(path.resolve()), _dir_identity(spec, path))
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise UserError(f"--base {spec}: not 'default', a .gguf file, a model directory or a hub id")
    return BaseModel(spec, spec, f"hub:{spec}@{_hub_revision(spec)}" if prepare else f"hub:{spec}")


def _hub_revision(repo_id: str) -> str:
    """The commit the hub (or the local hub cache, offline) resolves the id to."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        local = snapshot_download(repo_id, allow_patterns=["config.json"], local_files_only=is_offline())
    except LocalEntryNotFoundError as err:
        raise UserError(f"--base {repo_id}: offline and not in the local hub cache ({os.environ['HF_HOME']})") from err
    except Exception as err:  # noqa: BLE001 - hub errors are many; the message is what matters
        raise UserError(f"--base {repo_id}: cannot resolve on the hub: {err}") from err
    return Path(local).name


WEIGHTS = ("config.json", "*.safetensors", "*.bin")


def _dir_identity(spec: str, path: Path) -> str:
    """A model directory's identity: its config and weight files, whatever it is called."""
    read_json(path / "config.json", "model config (config.json of a Hugging Face model directory)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise UserError(f"--base {spec}: {path} has no weight files (*.safetensors or *.bin)")
    return "dir:" + sha256_tree(path, WEIGHTS)


def _from_gguf(spec: str, gguf: Path, prepare: bool) -> BaseModel:
    with open(gguf, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise UserError(f"--base {spec}: {gguf} is not a GGUF file (no GGUF magic number)")
    digest = sha256_file(gguf)
    target = paths.converted_model_dir(f"{gguf.stem}-{digest[:12]}")
    if not (target / COMPLETE_MARKER).exists():
        if not prepare:  # not converted yet (harness doctor): the file's own hash stands in
            return BaseModel(spec, str(target), f"gguf:{digest}")
        # Two processes starting at once (sweep workers, test workers) convert once: the second waits,
        # then finds the directory whole, instead of replacing it under the first one's readers.
        with exclusive(target.parent / f".{target.name}.lock"):
            if not (target / COMPLETE_MARKER).exists():
                convert_gguf(spec, gguf, target)
    return BaseModel(spec, str(target), _dir_identity(spec, target))


def convert_gguf(spec: str, gguf: Path, target: Path) -> None:
    """Dequantise a GGUF to a float32 safetensors directory, published whole."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (ValueError, KeyError, OSError) as err:  # transformers' words for an architecture or file it cannot read
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"--base {spec}: transformers cannot load this GGUF: {first}") from None
    # A model loaded from GGUF carries a quantizer that refuses to serialise; the weights are
    # already dequantised, so dropping it is exact.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    with publish_dir(target, replace=True) as tmp:  # a half-converted directory is never seen
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / COMPLETE_MARKER).write_text(str(gguf))


def load_tokenizer(base: BaseModel):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(base: BaseModel, dtype: str = "float32", quantization_config=None):
    """The base model's weights, on the GPU when there is one; float32 unless asked otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": getattr(torch, dtype)}
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map={"": 0})
    model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    if quantization_config is None:
        model.to(device())
    return model


def check_adapter(adapter: Path, base: BaseModel, flag: str) -> dict:
    """A peft adapter directory usable on `base`, or a UserError naming `flag` (the option that gave it);
    returns its adapter_config.json."""
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"{flag}: no adapter_config.json (not a peft adapter directory)")
    config = read_json(adapter / "adapter_config.json", "peft adapter config")
    if not isinstance(config.get("r", 8), int):
        raise UserError(f"{flag}: {adapter / 'adapter_config.json'}: r: expected an integer rank")
    if not any(adapter.glob("adapter_model.*")):
        raise UserError(f"{flag}: no adapter_model.safetensors (or .bin): the adapter's weights are missing")
    for record in (adapter / TRAIN_RECORD, adapter / MERGE_RECORD):
        made_for = read_json(record, "adapter record").get("base", {}).get("identity") if record.is_file() else None
        if made_for and made_for != base.identity:
            raise UserError(f"{flag}: trained for base {made_for[:24]}…, but --base {base.spec} is {base.identity[:24]}…")
    return config

