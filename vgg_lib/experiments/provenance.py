"""Where a study's runs came from, as a chapter prints it beside its tables: how many were read
from the records the book ships, from this machine's earlier runs, or trained here, and, read
from the records themselves (never from the machine that executes the page), the machines they
were made on, their precisions, torch versions and threads per run, the code that computed
them, and their summed wall and CPU time. ``Provenance.of(run_study(...), study)``."""

from dataclasses import dataclass

from ..training.profiles import format_seconds

SOURCES = ("shipped", "stored", "trained")   # RunResult.source, in the order they are printed


@dataclass(frozen=True)
class Provenance:
    study: str      # the study's name: the book ships its records in results/<study>/
    sources: dict   # source ("shipped", "stored", "trained") -> how many runs came from it
    records: tuple  # the RunRecords of the runs, whatever their source
    trained_seconds: float = 0.0  # summed wall time of the runs trained here, from their records

    @classmethod
    def of(cls, results, study):
        """The provenance of ``results`` (``RunResult``s of ``run_study``) of study ``study``."""
        return cls.of_records([(r.source, r.record) for r in results], study)

    @classmethod
    def of_records(cls, sourced, study):
        """The provenance of ``(source, RunRecord)`` pairs of study ``study`` (chapter 11's
        seeds: ``transfer.study.transfer_provenance``)."""
        return cls(study, {source: sum(s == source for s, _ in sourced) for source in SOURCES},
                   tuple(record for _, record in sourced),
                   sum(record.seconds for s, record in sourced if s == "trained"))

    @classmethod
    def shipped(cls, records, study):
        """The provenance of ``records`` (``RunRecord``s) shipped in ``results/<study>/``."""
        return cls(study, dict.fromkeys(SOURCES, 0) | {"shipped": len(records)}, tuple(records))

    @property
    def precisions(self):
        return sorted({r.precision for r in self.records})

    @property
    def threads(self):
        return sorted({r.threads for r in self.records})

    @property
    def seconds(self):
        """Wall time summed over the runs, as their records give it."""
        return sum(r.seconds for r in self.records)

    @property
    def cpu_seconds(self):
        """CPU time summed over the runs, as their records give it."""
        return sum(r.cpu_seconds for r in self.records)

    def lines(self):
        records, trained = self.records, self.sources["trained"]
        made_on = sorted({f"{r.machine.get('gpu')}, {r.device}" if r.device.startswith("cuda")
                          else f"{r.machine['cpu']} ({r.machine['cores']} cores), {r.device}"
                          for r in records})
        code = sorted({(r.code["git"] or "no git")[:10] + (" with changes" if r.code["modified"] else "")
                       for r in records})
        return [f"{len(records)} runs: {self.sources['shipped']} read from the records the book ships "
                f"(results/{self.study}/), {self.sources['stored']} from this machine's earlier runs, "
                f"{trained} trained here" + (f" in {format_seconds(self.trained_seconds)}" if trained else ""),
                "made on: " + "; ".join(made_on),
                f"precision {', '.join(self.precisions)}; torch {', '.join(sorted({r.torch for r in records}))}; "
                f"{', '.join(map(str, self.threads))} thread(s) per run",
                "code: " + ", ".join(code),
                f"cost: {format_seconds(self.seconds)} of wall time, "
                f"{format_seconds(self.cpu_seconds)} of CPU time, summed over the runs"]

    def __str__(self):
        return "\n".join(self.lines())
