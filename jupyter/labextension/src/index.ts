/**
 * credd in JupyterLab's status bar.
 *
 * One item: "credd: 3 ok · 1h12m" while every managed profile is served, red when a person is
 * needed (an IAM Identity Center sign-in or an MFA code), "credd needs setup" / "credd: daemon
 * stopped" otherwise. Hovering lists every profile; one click does what is needed (or lists the
 * profiles when nothing is). The status is polled from the credd server extension.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { getStatus, IStatus } from './api';
import { actFor, actionable, overviewDialog } from './dialogs';
import { ISummary, Level, summarize } from './format';

const POLL_MS = 12000;
const TICK_MS = 1000;
const LEVELS: Level[] = ['ok', 'busy', 'warn', 'person', 'off'];

export class CreddStatus extends Widget {
  private _status: IStatus | null = null;
  private _summary: ISummary = summarize(null, 'not asked yet');
  private _error: string | null = null;
  private _readAt = 0;
  private _timer = 0;
  private _ticker = 0;
  private _busy = false;
  private _asking = false;
  private _again = false;
  private readonly _text = document.createElement('span');

  constructor() {
    super();
    this.id = 'credd-status';
    this.addClass('credd-status');
    this.addClass('jp-StatusBar-TextItem');
    this._text.className = 'credd-status-text';
    this._text.textContent = 'credd: …';
    this.node.append(this._text);
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.addEventListener('click', () => void this.act());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        void this.act();
      }
    });
    void this.refresh();
    this._timer = window.setInterval(() => {
      if (document.visibilityState !== 'hidden') {
        void this.refresh();
      }
    }, POLL_MS);
    // the times left count down between polls; credentials that reach their end early
    // (a short session rotated since the last poll) make the item ask again at once
    this._ticker = window.setInterval(() => this._tick(), TICK_MS);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    window.clearInterval(this._ticker);
    super.dispose();
  }

  private _elapsed(): number {
    return this._readAt ? (Date.now() - this._readAt) / 1000 : 0;
  }

  private _tick(): void {
    if (this._status === null || this._status.daemon !== 'running') {
      return;
    }
    const elapsed = this._elapsed();
    const ended = this._status.profiles.some(
      p => typeof p.seconds_left === 'number' && p.seconds_left - elapsed <= 0
    );
    if (ended && elapsed > 2) {
      void this.refresh();
      return;
    }
    this._render(summarize(this._status, this._error, elapsed));
  }

  /** Ask the server extension now; the bar shows the answer. */
  async refresh(): Promise<void> {
    if (this._asking) {
      this._again = true; // asked while a poll is on its way: ask once more after it
      return;
    }
    this._asking = true;
    try {
      this._status = await getStatus();
      this._error = null;
    } catch (e) {
      this._status = null;
      this._error = e instanceof Error ? e.message : String(e);
    } finally {
      this._asking = false;
    }
    this._readAt = Date.now();
    this._render(summarize(this._status, this._error));
    if (this._again) {
      this._again = false;
      void this.refresh();
    }
  }

  private _render(summary: ISummary): void {
    this._summary = summary;
    this._text.textContent = summary.text;
    this.node.title = [...summary.lines, '', 'Click for details'].join('\n');
    for (const level of LEVELS) {
      this.toggleClass(`credd-level-${level}`, level === summary.level);
    }
    this.node.dataset.level = summary.level;
  }

  /** One click: the only profile that needs a person gets its dialog; otherwise the list. */
  async act(): Promise<void> {
    if (this._busy) {
      return;
    }
    this._busy = true;
    const done = () => void this.refresh();
    try {
      const running = this._status?.daemon === 'running' ? this._status.profiles : [];
      const person = running.filter(actionable);
      // one login for several profiles of one SSO session is still one thing to do
      const targets = new Set(person.map(p => `${p.person_action}:${p.person_profile || p.name}`));
      if (targets.size === 1) {
        await actFor(person[0], done);
      } else {
        await overviewDialog(this._status, this._summary.lines, done);
      }
    } finally {
      this._busy = false;
      void this.refresh();
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'credd-jupyterlab:status',
  description: 'credd: AWS profile states in the status bar, and the sign-ins they need',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null) => {
    if (!statusBar) {
      return;
    }
    const item = new CreddStatus();
    statusBar.registerStatusItem('credd-jupyterlab:status', {
      item,
      align: 'left',
      rank: 1000
    });
  }
};

export default plugin;
