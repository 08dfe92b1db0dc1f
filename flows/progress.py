"""A batch run's progress, as the Prefect dashboard shows it: the progress artifact `<task>-progress`,
updated as rows finish (not only as shards end), with rows ok / failed / blocked / left per stage."""

from __future__ import annotations

from collections import Counter

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from manifests import ResultRecord


class RunProgress:
    def __init__(self, flow_task: str, stages: list[str], source: str) -> None:
        self.stages = stages
        self.source = source
        self.entered: dict[str, int] = {}  # rows that entered each stage so far
        self.counts: dict[str, Counter] = {stage: Counter() for stage in stages}
        self.artifact = create_progress_artifact(
            0.0, key=f"{flow_task}-progress", description=self.describe()
        )

    def start(self, stage: str, rows: int) -> None:
        self.entered[stage] = rows
        self._publish()

    def rows_done(self, stage: str, records: dict[str, ResultRecord]) -> None:
        """`records`: every record of the stage's rows found so far."""
        counts = Counter(record.status for record in records.values())
        if counts != self.counts[stage]:
            self.counts[stage] = counts
            self._publish()

    def finish(self) -> None:
        update_progress_artifact(self.artifact, 100.0, description=self.describe())

    def percent(self) -> float:
        """The mean over the stages of the share of their rows finished (a stage not begun: 0)."""
        shares = [
            min(1.0, sum(self.counts[stage].values()) / self.entered[stage])
            if self.entered.get(stage)
            else 0.0
            for stage in self.stages
        ]
        return 100.0 * sum(shares) / len(shares)

    def describe(self) -> str:
        parts = []
        for stage in self.stages:
            if stage not in self.entered:
                parts.append(f"{stage}: waiting")
                continue
            c = self.counts[stage]
            left = max(0, self.entered[stage] - sum(c.values()))
            parts.append(f"{stage}: {c['ok']} ok, {c['failed']} failed, {c['blocked']} blocked, {left} left")
        return f"{self.source}: " + "; ".join(parts)

    def _publish(self) -> None:
        update_progress_artifact(self.artifact, self.percent(), description=self.describe())
