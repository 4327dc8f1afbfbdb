"""What a training run did, epoch by epoch and step by step, as plain data that plots itself."""

import math


class History:
    """Per-epoch records, per-step training losses, the test result and how the run ended.

    ``epochs``: list of dicts with keys epoch, train_loss, train_accuracy, val_loss,
    val_accuracy (on the validation split; None when there is none or it was not evaluated),
    lr, seconds, images_per_second.
    ``steps``: the training loss of every optimiser step (step 1 first).
    ``test``: ``{"loss": ..., "accuracy": ...}`` on the test set, evaluated once, when the run
    has finished all its epochs (None before that): choices are made on the validation split.
    A non-finite loss ends a run: ``diverged`` is True and ``diverged_at_step`` says which step.
    """

    def __init__(self, config=None):
        self.config = dict(config or {})
        self.epochs = []
        self.steps = []
        self.diverged = False
        self.diverged_at_step = None
        self.stopped_at_step = None  # set when max_steps ended the run early
        self.stopped_by_schedule = False  # the plateau schedule ended it: it stopped improving
        self.test = None

    # --- summaries ------------------------------------------------------------------------
    @property
    def finished(self):
        """True when the run trained every epoch of its recipe, or until the plateau schedule
        ended it (``stopped_by_schedule``), without diverging."""
        epochs = self.config.get("epochs")
        return (not self.diverged and self.stopped_at_step is None and bool(self.epochs)
                and (epochs is None or len(self.epochs) == epochs or self.stopped_by_schedule))

    def _val_accuracies(self):
        return [e["val_accuracy"] for e in self.epochs if e.get("val_accuracy") is not None]

    @property
    def final_val_accuracy(self):
        accuracies = self._val_accuracies()
        return accuracies[-1] if accuracies else None

    @property
    def best_val_accuracy(self):
        accuracies = self._val_accuracies()
        return max(accuracies) if accuracies else None

    @property
    def final_test_accuracy(self):
        """The test accuracy of the finished run (None for an unfinished one)."""
        return self.test["accuracy"] if self.test else None

    @property
    def status(self):
        if self.diverged:
            return f"diverged at step {self.diverged_at_step}"
        if not self.epochs:
            return "not started"
        text = f"{len(self.epochs)} epoch(s)"
        if self.stopped_at_step is not None:
            text += f", stopped at step {self.stopped_at_step} (max_steps)"
        if self.stopped_by_schedule:
            text += " (the plateau schedule ended it: validation stopped improving)"
        if self.final_val_accuracy is not None:
            text += f", validation accuracy {self.final_val_accuracy:.1%}"
        if self.final_test_accuracy is not None:
            text += f", test accuracy {self.final_test_accuracy:.1%}"
        return text

    def __str__(self):
        return f"History({self.status})"

    __repr__ = __str__

    # --- plain data, for checkpoints loaded with weights_only=True ---------------------------
    def to_dict(self):
        return {"config": dict(self.config), "epochs": [dict(e) for e in self.epochs],
                "steps": list(self.steps), "diverged": self.diverged,
                "diverged_at_step": self.diverged_at_step, "stopped_at_step": self.stopped_at_step,
                "test": dict(self.test) if self.test else None,
                # only when set: the histories of runs made before it existed read as they did
                **({"stopped_by_schedule": True} if self.stopped_by_schedule else {})}

    @classmethod
    def from_dict(cls, data):
        history = cls(data.get("config"))
        history.epochs = [dict(e) for e in data.get("epochs", [])]
        history.steps = list(data.get("steps", []))
        history.diverged = bool(data.get("diverged", False))
        history.diverged_at_step = data.get("diverged_at_step")
        history.stopped_at_step = data.get("stopped_at_step")
        history.stopped_by_schedule = bool(data.get("stopped_by_schedule", False))
        history.test = dict(data["test"]) if data.get("test") else None
        return history

    # --- pictures -------------------------------------------------------------------------
    def plot(self, title=None):
        """Loss and accuracy curves, training vs validation, as a matplotlib Figure (the test
        accuracy, measured once, is a single marked point at the last epoch)."""
        import matplotlib.pyplot as plt  # here: importing pyplot costs most of a second

        fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
        epochs = [e["epoch"] for e in self.epochs]
        if self.steps:
            steps_per_epoch = (self.config.get("steps_per_epoch")
                               or len(self.steps) / max(len(self.epochs), 1))
            x = [(i + 1) / steps_per_epoch for i in range(len(self.steps))]
            finite = [v if math.isfinite(v) else float("nan") for v in self.steps]
            loss_ax.plot(x, finite, color="tab:blue", alpha=0.25, linewidth=0.8,
                         label="train (each step)")
        loss_ax.plot(epochs, [e["train_loss"] for e in self.epochs], "o-", color="tab:blue",
                     label="train (epoch mean)")
        acc_ax.plot(epochs, [e["train_accuracy"] for e in self.epochs], "o-", color="tab:blue",
                    label="train")
        checked = [e for e in self.epochs if e.get("val_accuracy") is not None]
        if checked:
            loss_ax.plot([e["epoch"] for e in checked], [e["val_loss"] for e in checked], "s-",
                         color="tab:orange", label="validation")
            acc_ax.plot([e["epoch"] for e in checked], [e["val_accuracy"] for e in checked], "s-",
                        color="tab:orange", label="validation")
        if self.test:
            acc_ax.plot([epochs[-1]], [self.test["accuracy"]], "*", color="tab:green",
                        markersize=12, label="test (once, at the end)")
        loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
        acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
            ax.legend()
        if self.diverged:
            loss_ax.text(0.5, 0.9, f"diverged at step {self.diverged_at_step}",
                         transform=loss_ax.transAxes, ha="center", color="tab:red")
        fig.suptitle(title or self.status)
        fig.tight_layout()
        return fig
