"""A tiny model and data set for testing the training loop."""
import os
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab.train import TrainableModule


@dataclass(frozen=True)
class ToyConfig:
    lr: float = 0.05
    nan_at_step: int = 0         # make the loss NaN at this global step (0 = never)
    sleep: float = 0.0           # seconds per step, so a test can kill it mid-epoch
    ema: float = 0.0             # the model's ema_decay


class Toy(TrainableModule):
    steps_taken = 0              # counts train_step calls in this process
    crash_at_step = 0            # raise at this global step (not part of the config, so not of the cache key)

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.ema_decay = cfg.ema
        # Dropout makes the run depend on the RNG, so resume must restore it exactly.
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def configure_optimizers(self):
        return {"sgd": torch.optim.SGD(self.parameters(), lr=self.cfg.lr, momentum=0.9)}

    def configure_schedulers(self, optimizers, total_steps):
        return [torch.optim.lr_scheduler.LinearLR(optimizers["sgd"], 1.0, 0.1, total_iters=total_steps)]

    def loss(self, batch):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        if self.training:
            Toy.steps_taken += 1
            if self.cfg.nan_at_step and Toy.steps_taken == self.cfg.nan_at_step:
                loss = loss * float("nan")
            if Toy.crash_at_step and Toy.steps_taken == Toy.crash_at_step:
                raise KeyboardInterrupt("simulated crash")
            if Toy.steps_taken == int(os.environ.get("TOY_HANG_AT_STEP", 0)):
                # The kill -9 test waits for this marker, then kills the process mid-epoch.
                open(os.environ["TOY_MARKER"], "w").write(str(Toy.steps_taken))
                time.sleep(600)
            if self.cfg.sleep:
                time.sleep(self.cfg.sleep)
        return loss, {}


def toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def run(cfg=ToyConfig(), epochs=4, **kw):
    from genlab.train import fit
    return fit("toy", lambda: Toy(cfg), cfg, toy_data(), epochs=epochs, batch_size=32,
               data_id="toy", val=toy_data(64, seed=1), device="cpu", **kw)


if __name__ == "__main__":  # used by the kill -9 test
    run()
