"""Train a small EquiformerV2 on GFN2-xTB ethanol frames with EMPP as an auxiliary loss.

    python examples/train_with_empp.py [workdir]
"""

import logging
import sys
from pathlib import Path

import yaml

from mlff.data.formats import write_structures
from mlff.data.generate import generate_md17
from mlff.train.config import load_config
from mlff.train.run import train

logging.basicConfig(level=logging.INFO, format="%(message)s")  # show mlff's progress lines

work = Path(sys.argv[1] if len(sys.argv) > 1 else "empp_example")
work.mkdir(parents=True, exist_ok=True)
data = work / "ethanol.xyz"
if not data.is_file():
    write_structures(data, generate_md17("ethanol", 60, temperature=500, seed=0, progress=False))
config = {
    "data": {"train": [str(data)], "split": {"val": 10, "test": 10, "seed": 0}},
    "model": {"preset": "small"},
    "loss": {"kind": "mse", "energy_weight": 1000.0, "forces_weight": 10.0},  # EMPP's weight was tuned next to MSE
    "optim": {"lr": 0.003, "warmup_steps": 5, "ema_decay": 0.99},
    "empp": {"masks": 1, "weight": 0.1, "sphere_points": 2500},
    "epochs": 3, "batch_size": 8, "output": str(work / "run"), "progress": False,
}
(work / "config.yaml").write_text(yaml.safe_dump(config))
table = train(load_config(work / "config.yaml"))
print(f"test force MAE {table['test']['force_mae']:.1f} meV/Å after 3 epochs; model in {work / 'run' / 'model.pt'}")
