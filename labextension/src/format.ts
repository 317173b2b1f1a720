/**
 * Pure text helpers for progress: durations, rates, counts, states and tooltips.
 *
 * No DOM and no widget imports, so they are trivial to reason about, reuse and test.
 */

import type { IOverallRecord, IWorkerRecord, WorkerState } from './tokens';

const EMPTY = '–';

/** Worker states in the order the summary counts them. */
export const WORKER_STATES: WorkerState[] = ['busy', 'idle', 'done', 'stopped', 'failed'];

/** Seconds as "7 s", "3 m 05 s" or "1 h 02 m"; a dash for unknown or negative values. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return EMPTY;
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  const total = Math.round(seconds);
  if (total < 60) {
    return `${total} s`;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  if (total < 3600) {
    return `${Math.floor(total / 60)} m ${pad(total % 60)} s`;
  }
  return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} m`;
}

/** A count with thousands separators; compact ("12.3k") when `compact` is set. */
export function formatCount(n: number | null | undefined, compact = false): string {
  if (n === null || n === undefined || !Number.isFinite(n)) {
    return EMPTY;
  }
  if (compact) {
    const abs = Math.abs(n);
    if (abs >= 1e9) {
      return `${(n / 1e9).toFixed(1)}G`;
    }
    if (abs >= 1e6) {
      return `${(n / 1e6).toFixed(1)}M`;
    }
    if (abs >= 1e4) {
      return `${(n / 1e3).toFixed(1)}k`;
    }
  }
  return Math.round(n).toLocaleString('en-US');
}

/** Rows per second as "850/s", "12.3/s", "4.1k/s"; a dash for no rate yet. */
export function formatRate(rowsPerSecond: number | null | undefined): string {
  if (rowsPerSecond === null || rowsPerSecond === undefined || !Number.isFinite(rowsPerSecond)) {
    return EMPTY;
  }
  if (rowsPerSecond <= 0) {
    return '0/s';
  }
  if (rowsPerSecond < 100) {
    return `${rowsPerSecond.toFixed(1)}/s`;
  }
  return `${formatCount(rowsPerSecond, true)}/s`;
}

/** Clamp a percentage into 0..100 (NaN becomes 0). */
export function clampPercent(percent: number | null | undefined): number {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) {
    return 0;
  }
  return Math.min(100, Math.max(0, percent));
}

/** A percentage as text, rounded down so that an unfinished run never reads "100%". */
export function percentText(percent: number | null | undefined): string {
  return `${Math.floor(clampPercent(percent) + 1e-9)}%`;
}

/**
 * How far a worker is through its part of the run, 0..1. The kernel sends it (it never
 * decreases); a record without it (an older kernel) falls back to done / assigned.
 */
export function workerFraction(
  worker: Pick<IWorkerRecord, 'done' | 'assigned'> & { fraction?: number | null }
): number {
  if (worker.fraction !== undefined) {
    const f = worker.fraction;
    return f === null || !Number.isFinite(f) ? 0 : Math.min(1, Math.max(0, f));
  }
  if (!worker.assigned || worker.assigned <= 0) {
    return 0;
  }
  return Math.min(1, Math.max(0, worker.done / worker.assigned));
}

/** The run's state in words: "running", "done", "cancelled at 93%", "failed at 40%". */
export function runStatus(
  overall: Pick<IOverallRecord, 'state' | 'percent'> & {
    status?: string;
  }
): string {
  if (overall.status) {
    return overall.status;
  }
  if (overall.state === 'cancelled' || overall.state === 'failed') {
    return `${overall.state} at ${percentText(overall.percent)}`;
  }
  return overall.state;
}

/** The overall line: "63% · 1,260 / 2,000 rows · 5 / 8 partitions · 12.0 s elapsed · ETA 7.1 s". */
export function overallText(overall: IOverallRecord): string {
  const unit = overall.unit || 'rows';
  const parts = [percentText(overall.percent)];
  const total = overall.total === null ? '?' : formatCount(overall.total);
  parts.push(`${formatCount(overall.done)} / ${total} ${unit}`);
  if (overall.partitions_total !== null && overall.partitions_total !== undefined) {
    parts.push(`${overall.partitions_done} / ${overall.partitions_total} partitions`);
  }
  parts.push(`${formatDuration(overall.elapsed)} elapsed`);
  if (overall.state === 'running') {
    parts.push(`ETA ${formatDuration(overall.eta)}`);
  }
  return parts.join(' · ');
}

/** "6 busy · 1 idle · 1 failed": the workers' states, counted (states with none left out). */
export function stateCounts(workers: ReadonlyArray<Pick<IWorkerRecord, 'state'>>): string {
  const counts = new Map<string, number>();
  for (const w of workers) {
    counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
  }
  return WORKER_STATES.filter(s => counts.has(s))
    .map(s => `${counts.get(s)} ${s}`)
    .join(' · ');
}

/** The tooltip of one worker: its state, partition, counts, rate and error. */
export function workerTooltip(worker: IWorkerRecord, unit = 'rows'): string {
  const lines = [`Worker ${worker.id}: ${worker.state}`];
  if (worker.partition !== null && worker.partition !== undefined) {
    lines.push(`Partition ${worker.partition}`);
  }
  lines.push(
    `${formatCount(worker.done)} ${unit} done of ${formatCount(worker.assigned)} handed out · ` +
      `${formatRate(worker.rate)}`
  );
  lines.push(
    `Bar: ${percentText(workerFraction(worker) * 100)} of its part of the run ` +
      '(its rows done, plus the rest of its partition and an even share of the rows not handed out yet)'
  );
  if (worker.error) {
    lines.push(`Error: ${worker.error}`);
  }
  return lines.join('\n');
}

/** The status-bar text: "parallel 63% · 8 workers", or "parallel · 2 runs" for several. */
export function statusText(overall: IOverallRecord, workerCount: number, runCount = 1): string {
  if (runCount > 1) {
    return `parallel · ${runCount} runs`;
  }
  const noun = workerCount === 1 ? 'worker' : 'workers';
  return `parallel ${percentText(overall.percent)} · ${workerCount} ${noun}`;
}
