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

/** The display type the kernel sends; its data names the lab widget's model. */
export const MIME_TYPE = 'application/vnd.jupyter-par.progress+json';

/** The standard ipywidgets display type, which the progress renderer hands on to. */
export const WIDGET_VIEW_MIME_TYPE = 'application/vnd.jupyter.widget-view+json';

export namespace CommandIDs {
  /** Cancel the active notebook's run (or the run given by `{ run }`). */
  export const cancel = 'jupyter-par:cancel';
  /** Scroll to and select the cell that shows the running widget (or `{ run }`'s). */
  export const showRunning = 'jupyter-par:show-running';
  /** Open the menu that lists the runs of every open kernel. */
  export const listRuns = 'jupyter-par:list-runs';
}

export type WorkerState = 'idle' | 'busy' | 'done' | 'failed' | 'stopped';

export type RunState = 'running' | 'done' | 'failed' | 'cancelled';

/**
 * How the front end stops a run: `interrupt` the kernel (the run holds the cell, so the
 * kernel reads no comm message until it ends), send the cancel `message` (a run in a
 * background thread, like the panel's), or `none` (nothing can stop it from here).
 */
export type CancelRoute = 'interrupt' | 'message' | 'none';

/** One worker's progress, as sent in the `workers` trait. */
export interface IWorkerRecord {
  id: string;
  state: WorkerState;
  /** Rows it got through. */
  done: number;
  /** Rows handed to it. */
  assigned: number;
  /** How far through its part of the run, 0 to 1, never decreasing; null if unknown. */
  fraction: number | null;
  /** Rows per second. */
  rate: number;
  partition: number | null;
  error: string | null;
}

/** What one running partition printed lately, as sent in the `log` trait. */
export interface ILogRecord {
  partition: number;
  worker: string;
  /** Its last lines (the whole output is printed under the cell when the run ends). */
  text: string;
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
  /** "running", "done", "cancelled at 93%", "failed at 40%". */
  status: string;
  /** The error that stopped a failed run. */
  message: string | null;
  label: string;
  unit: string;
  partitions_done: number;
  partitions_total: number | null;
  cancel: CancelRoute;
}

/** The custom message the front end sends to cancel a run. */
export const CANCEL_MESSAGE = { event: 'cancel' };
