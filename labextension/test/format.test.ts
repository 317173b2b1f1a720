import { describe, expect, it } from 'vitest';

import {
  clampPercent,
  formatCount,
  formatDuration,
  formatRate,
  overallText,
  percentText,
  runStatus,
  stateCounts,
  statusText,
  workerFraction,
  workerTooltip
} from '../src/format';
import type { IOverallRecord, IWorkerRecord } from '../src/tokens';

const overall: IOverallRecord = {
  done: 1260,
  total: 2000,
  percent: 63,
  elapsed: 12,
  eta: 7.1,
  state: 'running',
  status: 'running',
  message: null,
  label: 'score',
  unit: 'rows',
  partitions_done: 5,
  partitions_total: 8,
  cancel: 'interrupt'
};

const worker: IWorkerRecord = {
  id: '3',
  state: 'failed',
  done: 40,
  assigned: 100,
  fraction: 0.25,
  rate: 12.5,
  partition: 7,
  error: 'ValueError: bad row'
};

describe('numbers', () => {
  it('formats durations', () => {
    expect(formatDuration(4.25)).toBe('4.3 s');
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(185)).toBe('3 m 05 s');
    expect(formatDuration(3720)).toBe('1 h 02 m');
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(-1)).toBe('–');
  });

  it('formats counts and rates', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(12345, true)).toBe('12.3k');
    expect(formatCount(2.5e6, true)).toBe('2.5M');
    expect(formatCount(950, true)).toBe('950');
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(12.34)).toBe('12.3/s');
    expect(formatRate(4100)).toBe('4,100/s');
    expect(formatRate(41000)).toBe('41.0k/s');
  });

  it('never shows an unfinished run at 100%', () => {
    expect(percentText(99.96)).toBe('99%');
    expect(percentText(100)).toBe('100%');
    expect(clampPercent(140)).toBe(100);
    expect(clampPercent(Number.NaN)).toBe(0);
  });
});

describe('workers', () => {
  it('draws the fraction the kernel sent, not done / assigned', () => {
    expect(workerFraction({ done: 40, assigned: 100, fraction: 0.25 })).toBe(0.25);
    expect(workerFraction({ done: 40, assigned: 100, fraction: null })).toBe(0);
    expect(workerFraction({ done: 40, assigned: 100, fraction: 3 })).toBe(1);
    // a record from an older kernel, without the field
    expect(workerFraction({ done: 40, assigned: 100 })).toBe(0.4);
  });

  it('counts states in a fixed order and leaves out the absent ones', () => {
    const states = ['busy', 'done', 'busy', 'failed', 'idle'] as const;
    expect(stateCounts(states.map(state => ({ state })))).toBe(
      '2 busy · 1 idle · 1 done · 1 failed'
    );
    expect(stateCounts([])).toBe('');
  });

  it('puts state, partition, counts and error in the tooltip', () => {
    const tip = workerTooltip(worker);
    expect(tip.split('\n')[0]).toBe('Worker 3: failed');
    expect(tip).toContain('Partition 7');
    expect(tip).toContain('40 rows done of 100 handed out · 12.5/s');
    expect(tip).toContain('Bar: 25% of its part of the run');
    expect(tip).toContain('Error: ValueError: bad row');
  });
});

describe('the run', () => {
  it('writes the overall line', () => {
    expect(overallText(overall)).toBe(
      '63% · 1,260 / 2,000 rows · 5 / 8 partitions · 12 s elapsed · ETA 7.1 s'
    );
    expect(overallText({ ...overall, state: 'done', total: null })).toBe(
      '63% · 1,260 / ? rows · 5 / 8 partitions · 12 s elapsed'
    );
  });

  it('says where a stopped run stopped', () => {
    expect(runStatus({ state: 'cancelled', percent: 93.7, status: 'cancelled at 93%' })).toBe(
      'cancelled at 93%'
    );
    // an older kernel that sends no status
    expect(runStatus({ state: 'failed', percent: 40.2 })).toBe('failed at 40%');
    expect(runStatus({ state: 'running', percent: 10 })).toBe('running');
  });

  it('writes the status-bar text', () => {
    expect(statusText(overall, 8)).toBe('parallel 63% · 8 workers');
    expect(statusText(overall, 1)).toBe('parallel 63% · 1 worker');
    expect(statusText(overall, 8, 3)).toBe('parallel · 3 runs');
  });
});
