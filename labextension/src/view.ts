/**
 * The widget view: one compact element for all workers of a run.
 *
 * Trait changes arrive up to ~10 times a second for up to 64+ workers, so the view never
 * rebuilds its DOM: rows are created once per worker id and afterwards only the attributes and
 * texts that changed are written, at most once per animation frame.
 *
 * Every state is written out in words (busy, idle, done, failed, stopped), not by colour
 * alone, and a failed worker's error is shown under the workers, not only in a tooltip.
 * Above `gridThreshold` workers each one becomes a small cell (id, rows done, state, bar).
 *
 * Under the workers, what the running partitions print appears as they print it (the `log`
 * trait: the last lines of each, one block per partition); it goes away when the run ends,
 * since the whole output is then printed under the cell.
 */

import { DOMWidgetView } from '@jupyter-widgets/base';

import {
  clampPercent,
  formatCount,
  formatRate,
  overallText,
  percentText,
  runStatus,
  stateCounts,
  workerFraction,
  workerTooltip
} from './format';
import { cancelRun, logOf, overallOf, runs, workersOf } from './runs';
import { DEFAULT_GRID_THRESHOLD, ILogRecord, IWorkerRecord } from './tokens';

/** The nodes of one worker row, and what was last written to them. */
interface IWorkerRow {
  node: HTMLElement;
  state: HTMLElement;
  bar: HTMLElement;
  percent: HTMLElement;
  count: HTMLElement;
  rate: HTMLElement;
  note: HTMLElement;
  last: Record<string, string>;
}

/** Create an element with a class, optionally inside a parent. */
function el(tag: string, className: string, parent?: HTMLElement): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  parent?.appendChild(node);
  return node;
}

/** Write a value only when it differs from the last one written under that key. */
function put(
  last: Record<string, string>,
  key: string,
  value: string,
  write: (value: string) => void
): void {
  if (last[key] !== value) {
    last[key] = value;
    write(value);
  }
}

export class ProgressView extends DOMWidgetView {
  /** Above this many workers the view draws a grid; set from the plugin's settings. */
  static gridThreshold = DEFAULT_GRID_THRESHOLD;

  override render(): void {
    const root = this.el as HTMLElement;
    root.classList.add('jp-par-progress');

    this._overall = el('div', 'jp-par-overall', root);
    this._label = el('span', 'jp-par-overall-label', this._overall);
    const track = el('div', 'jp-par-overall-track', this._overall);
    this._overallBar = el('div', 'jp-par-overall-bar', track);
    this._overallText = el('span', 'jp-par-overall-text', this._overall);
    this._state = el('span', 'jp-par-overall-state', this._overall);
    this._cancel = el('button', 'jp-par-cancel jp-mod-styled', this._overall) as HTMLButtonElement;
    this._cancel.textContent = 'Cancel';
    this._cancel.title = 'Stop all workers of this run; nothing is stored';
    this._cancel.addEventListener('click', this._onCancel);

    this._message = el('div', 'jp-par-message', root);
    this._summary = el('div', 'jp-par-summary', root);
    this._workers = el('div', 'jp-par-workers', root);
    this._errors = el('div', 'jp-par-errors', root);
    this._log = el('div', 'jp-par-log', root);
    this._log.hidden = true;
    this._explain = el('div', 'jp-par-explain', root);

    this.listenTo(this.model, 'change:log', () => this._drawLog(logOf(this.model)));
    this.listenTo(this.model, 'change:workers', () => this._schedule(true, false));
    this.listenTo(this.model, 'change:overall', () => this._schedule(true, true));
    this.listenTo(this.model, 'comm_live_update', () => this._schedule(false, true));
    this.listenTo(this.model, 'change:explain', () => this._drawExplain());
    runs.attachView(this, true);
    this._draw(true, true);
    this._drawLog(logOf(this.model));
    this._drawExplain();
  }

  /** The line under a finished run: where its time went (empty while it runs). */
  private _drawExplain(): void {
    const text = String(this.model.get('explain') ?? '');
    this._explain.textContent = text;
    this._explain.hidden = text === '';
  }

  override remove(): unknown {
    if (this._frame !== 0) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    this._cancel?.removeEventListener('click', this._onCancel);
    runs.attachView(this, false);
    return super.remove();
  }

  /** Coalesce changes so that many trait messages cost one paint. */
  private _schedule(workers: boolean, overall: boolean): void {
    this._dirtyWorkers ||= workers;
    this._dirtyOverall ||= overall;
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        const w = this._dirtyWorkers;
        const o = this._dirtyOverall;
        this._dirtyWorkers = this._dirtyOverall = false;
        this._draw(w, o);
      });
    }
  }

  private _draw(workers: boolean, overall: boolean): void {
    if (workers) {
      this._drawWorkers(workersOf(this.model));
    }
    if (overall) {
      this._drawOverall();
    }
  }

  private _drawOverall(): void {
    const overall = overallOf(this.model);
    const last = this._overallLast;
    const percent = clampPercent(overall.percent);
    const live = this.model.comm_live;
    put(last, 'state', overall.state, v => {
      this._overall.dataset.state = v;
      this.el.dataset.state = v;
    });
    put(last, 'status', runStatus(overall), v => (this._state.textContent = v));
    const cancellable = overall.state === 'running' && overall.cancel !== 'none' && live;
    put(last, 'cancellable', String(cancellable), v => {
      this._cancel.hidden = v !== 'true';
      if (v !== 'true') {
        this._cancel.disabled = false;
        this._cancel.textContent = 'Cancel';
      }
    });
    put(last, 'label', overall.label || 'parallel', v => (this._label.textContent = v));
    put(last, 'percent', percent.toFixed(1), v => {
      this._overall.dataset.percent = v;
      this._overallBar.style.width = `${v}%`;
    });
    put(last, 'text', overallText(overall), v => (this._overallText.textContent = v));
    const message = overall.state === 'failed' && overall.message ? overall.message : '';
    put(last, 'message', message, v => {
      this._message.textContent = v;
      this._message.hidden = v === '';
    });
  }

  private _drawWorkers(workers: IWorkerRecord[]): void {
    const grid = workers.length > ProgressView.gridThreshold;
    const unit = overallOf(this.model).unit || 'rows';
    put(this._rootLast, 'layout', grid ? 'grid' : 'rows', v => {
      this.el.dataset.layout = v;
      this._workers.classList.toggle('jp-par-grid', v === 'grid');
    });
    put(this._rootLast, 'count', String(workers.length), v => (this.el.dataset.workers = v));
    put(this._rootLast, 'summary', `workers: ${stateCounts(workers)}`, v => {
      this._summary.textContent = v;
    });

    const seen = new Set<string>();
    const errors: string[] = [];
    for (const worker of workers) {
      const id = String(worker.id);
      seen.add(id);
      let row = this._rows.get(id);
      if (!row) {
        row = this._createRow(id);
        this._rows.set(id, row);
      }
      this._updateRow(row, worker, unit, grid);
      if (worker.error) {
        errors.push(`worker ${id}: ${worker.error}`);
      }
    }
    for (const [id, row] of this._rows) {
      if (!seen.has(id)) {
        row.node.remove();
        this._rows.delete(id);
      }
    }
    put(this._rootLast, 'errors', errors.join('\n'), () => {
      this._errors.replaceChildren(
        ...errors.map(text => {
          const line = el('div', 'jp-par-error');
          line.textContent = text;
          return line;
        })
      );
      this._errors.hidden = errors.length === 0;
    });
  }

  /** One block per partition that printed lately: its heading, then its last lines. */
  private _drawLog(entries: ILogRecord[]): void {
    const shown = entries.filter(entry => entry.text);
    const seen = new Set<string>();
    for (const entry of shown) {
      const key = String(entry.partition);
      seen.add(key);
      let block = this._logBlocks.get(key);
      if (!block) {
        const node = el('div', 'jp-par-log-block');
        node.dataset.partition = key;
        const head = el('div', 'jp-par-log-head', node);
        const text = el('pre', 'jp-par-log-text', node);
        block = { node, head, text };
        this._logBlocks.set(key, block);
      }
      const heading = `partition ${entry.partition} · worker ${entry.worker}`;
      if (block.head.textContent !== heading) {
        block.head.textContent = heading;
      }
      if (block.text.textContent !== entry.text) {
        block.text.textContent = entry.text;
        block.text.scrollTop = block.text.scrollHeight;
      }
    }
    for (const [key, block] of this._logBlocks) {
      if (!seen.has(key)) {
        block.node.remove();
        this._logBlocks.delete(key);
      }
    }
    // In partition order, whatever order they started printing in.
    const ordered = [...this._logBlocks.entries()]
      .sort((a, b) => Number(a[0]) - Number(b[0]))
      .map(([, block]) => block.node);
    if (ordered.some((node, i) => this._log.children[i] !== node)) {
      this._log.replaceChildren(...ordered);
    }
    this._log.hidden = shown.length === 0;
  }

  private _createRow(id: string): IWorkerRow {
    const node = el('div', 'jp-par-worker', this._workers);
    node.dataset.workerId = id;
    el('span', 'jp-par-worker-id', node).textContent = id;
    const state = el('span', 'jp-par-worker-state', node);
    const track = el('div', 'jp-par-worker-track', node);
    const bar = el('div', 'jp-par-worker-bar', track);
    const percent = el('span', 'jp-par-worker-percent', node);
    const count = el('span', 'jp-par-worker-count', node);
    const rate = el('span', 'jp-par-worker-rate', node);
    const note = el('span', 'jp-par-worker-note', node);
    return { node, state, bar, percent, count, rate, note, last: {} };
  }

  private _updateRow(row: IWorkerRow, worker: IWorkerRecord, unit: string, grid: boolean): void {
    const { node, last } = row;
    const fraction = workerFraction(worker);
    put(last, 'state', worker.state, v => {
      node.dataset.state = v;
      row.state.textContent = v;
    });
    put(last, 'width', (fraction * 100).toFixed(2), v => {
      row.bar.style.width = `${v}%`;
      node.dataset.fraction = (Number(v) / 100).toFixed(4);
    });
    put(last, 'percent', percentText(fraction * 100), v => (row.percent.textContent = v));
    const count = grid ? formatCount(worker.done, true) : `${formatCount(worker.done)} ${unit}`;
    put(last, 'count', count, v => (row.count.textContent = v));
    put(last, 'done', String(worker.done), v => (node.dataset.done = v));
    put(last, 'rate', formatRate(worker.rate), v => (row.rate.textContent = v));
    const note =
      worker.partition !== null && worker.partition !== undefined
        ? `partition ${worker.partition}`
        : '';
    put(last, 'note', note, v => (row.note.textContent = v));
    put(last, 'title', workerTooltip(worker, unit), v => (node.title = v));
  }

  private _onCancel = (event: MouseEvent): void => {
    // The click is the view's own: the notebook must not take it as a click into the cell.
    event.stopPropagation();
    this._cancel.disabled = true;
    this._cancel.textContent = 'Cancelling…';
    void cancelRun(this.model).then(asked => {
      if (!asked) {
        this._cancel.disabled = false;
        this._cancel.textContent = 'Cancel';
      }
    });
  };

  private _overall!: HTMLElement;
  private _label!: HTMLElement;
  private _overallBar!: HTMLElement;
  private _overallText!: HTMLElement;
  private _state!: HTMLElement;
  private _cancel!: HTMLButtonElement;
  private _message!: HTMLElement;
  private _summary!: HTMLElement;
  private _workers!: HTMLElement;
  private _errors!: HTMLElement;
  private _log!: HTMLElement;
  private _logBlocks = new Map<
    string,
    { node: HTMLElement; head: HTMLElement; text: HTMLElement }
  >();
  private _explain!: HTMLElement;
  private _rows = new Map<string, IWorkerRow>();
  private _overallLast: Record<string, string> = {};
  private _rootLast: Record<string, string> = {};
  private _frame = 0;
  private _dirtyWorkers = false;
  private _dirtyOverall = false;
}
