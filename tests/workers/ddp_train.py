"""Run under torchrun by tests/test_distributed.py: train a digits MLP with DDP, save this rank's weights.

Usage: torchrun --nproc_per_node 2 tests/workers/ddp_train.py OUT_DIR RECIPE
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from robact_bench import distributed, load_dataset
from robact_bench.models import ModelSpec
from robact_bench.training.config import TrainConfig
from robact_bench.training.loop import train_model


def main() -> None:
    out, recipe = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    distributed.init("cpu")
    rank = distributed.rank()
    x, y = load_dataset("digits", "train")
    x, y = x[:256], y[:256]
    torch.manual_seed(100 + rank)  # different initial weights on purpose: DDP must start from rank 0's
    model = ModelSpec("mlp2", "relu", arch_kwargs={"img_size": 8, "hidden": [32, 32]}).build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(recipe=recipe, epochs=2, batch_size=64, lr=1e-2, eps=0.1, step_size=0.025, steps=3, seed=0)
    history = train_model(model, x, y, cfg, progress=False, state_path=out / "state.safetensors")
    tensors = {f"final.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"init.{k}": v.contiguous() for k, v in init.items()})
    tensors["loss"] = torch.tensor([row["loss"] for row in history], dtype=torch.float64)
    save_file(tensors, str(out / f"rank{rank}.safetensors"), metadata={"world_size": str(distributed.world_size())})
    distributed.shutdown()


if __name__ == "__main__":
    main()
