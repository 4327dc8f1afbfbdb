"""The paper's learning-rate schedule: divide by 10 when the validation accuracy stops improving.

Section 3.1 of the paper: "The learning rate was initially set to 1e-2, and then decreased by a
factor of 10 when the validation set accuracy stopped improving. In total, the learning rate was
decreased 3 times, and the learning was stopped after 370K iterations (74 epochs)." The paper
does not say how long "stopped improving" had to last; here it is ``patience`` epochs in a row
whose validation accuracy is no higher than the best so far. After ``decreases`` decreases the
next such stall ends the run: the network has stopped improving on validation at the lowest
rate, which is this schedule's meaning of "trained to convergence". ``TrainConfig.epochs`` stays
the most a run may train.

Not in the paper: the rate rises linearly from 1/25 of its peak over the first epoch (the
one-cycle schedule's warm-up start), because a network with batch norm at a high peak rate can
diverge in its first steps.

``fit`` uses it for ``TrainConfig(schedule="plateau")``: ``Plateau`` is the multiplier that
``torch.optim.lr_scheduler.LambdaLR`` calls every step, and ``fit`` tells it each epoch's
validation accuracy. Its state is plain numbers in its ``__dict__``, which ``LambdaLR``'s own
``state_dict`` saves and restores, so a checkpointed run resumes where it stood.
"""

WARMUP_START = 0.04  # the first step's multiplier, here and in the one-cycle schedule (lr_factor)


class Plateau:
    """Multiplier of the peak learning rate: warm-up over the first epoch, then ``factor`` to the
    power of the decreases made so far; ``end_of_epoch(accuracy)`` decides, after each epoch,
    whether to decrease and whether the run ends."""

    def __init__(self, steps_per_epoch, patience=3, decreases=3, factor=0.1):
        self.warmup_steps = max(1, int(steps_per_epoch))
        self.patience, self.decreases, self.factor = int(patience), int(decreases), float(factor)
        self.best = None       # the best validation accuracy so far
        self.stalled = 0       # epochs in a row since it last improved (reset by a decrease)
        self.decreased = 0     # decreases made so far

    def __call__(self, step):
        """The multiplier for optimiser step ``step`` (0-based), as LambdaLR asks for it."""
        warm = 1.0
        if step < self.warmup_steps:
            warm = WARMUP_START + (1 - WARMUP_START) * step / self.warmup_steps
        return warm * self.factor ** self.decreased

    def end_of_epoch(self, accuracy):
        """Take the epoch's validation accuracy; True when the run should end here."""
        if accuracy is None:
            raise ValueError("The plateau schedule needs the validation accuracy after every "
                             "epoch: give the data a validation split and keep eval_every_epoch=True.")
        if self.best is None or accuracy > self.best:
            self.best, self.stalled = accuracy, 0
            return False
        self.stalled += 1
        if self.stalled < self.patience:
            return False
        if self.decreased >= self.decreases:
            return True
        self.decreased, self.stalled = self.decreased + 1, 0
        return False
