/**
 * Names and shapes shared by the widget, the status-bar item and the commands.
 *
 * The record types mirror the traits of `jupyter_par.widgets.lab_widget.LabProgressWidget`;
 * that Python class is the other half of this contract.
 */

// The package manifest is the one front-end version source; the bundler resolves this require.
declare function require(path: string): { name: string; version: string };
const manifest = require('../package.json');

/** Module name the Python widget names in `_model_module` / `_view_module`. */
export const MODULE_NAME: string = manifest.name;

/** Must equal `jupyter_par.__version__` (a Python test checks that they agree). */
export const MODULE_VERSION: string = manifest.version;

/** Plugin id; also the settings key, matching `schema/plugin.json`. */
export const PLUGIN_ID = 'jupyter-par:plugin';

/** Plugin that registers the widget model and view with the widget manager. */
export const WIDGETS_PLUGIN_ID = 'jupyter-par:widgets';

/** Above this many workers the view draws a compact grid instead of rows. */
export const DEFAULT_GRID_THRESHOLD = 16;

export namespace CommandIDs {
  /** Ask the running widget's kernel side to cancel the run. */
  export const cancel = 'jupyter-par:cancel';
  /** Scroll to and select the cell that shows the running widget. */
  export const showRunning = 'jupyter-par:show-running';
}

export type WorkerState = 'idle' | 'busy' | 'done' | 'failed';

export type RunState = 'running' | 'done' | 'failed' | 'cancelled';

/** One worker's progress, as sent in the `workers` trait. */
export interface IWorkerRecord {
  id: string;
  state: WorkerState;
  done: number;
  assigned: number;
  /** Rows per second. */
  rate: number;
  partition: number | null;
  error: string | null;
}

/** The whole run, as sent in the `overall` trait. */
export interface IOverallRecord {
  done: number;
  total: number | null;
  /** 0 to 100. */
  percent: number;
  /** Seconds since the run started. */
  elapsed: number;
  /** Seconds left, or null when unknown. */
  eta: number | null;
  state: RunState;
  label: string;
  partitions_done: number;
  partitions_total: number | null;
}

/** The custom message the front end sends to cancel a run. */
export const CANCEL_MESSAGE = { event: 'cancel' };
