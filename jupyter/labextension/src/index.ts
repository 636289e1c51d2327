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
import { actFor, overviewDialog } from './dialogs';
import { ISummary, Level, summarize } from './format';

const POLL_MS = 12000;
const LEVELS: Level[] = ['ok', 'busy', 'warn', 'person', 'off'];

export class CreddStatus extends Widget {
  private _status: IStatus | null = null;
  private _summary: ISummary = summarize(null, 'not asked yet');
  private _timer = 0;
  private _busy = false;
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
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  /** Ask the server extension now; the bar shows the answer. */
  async refresh(): Promise<void> {
    let error: string | null = null;
    try {
      this._status = await getStatus();
    } catch (e) {
      this._status = null;
      error = e instanceof Error ? e.message : String(e);
    }
    this._render(summarize(this._status, error));
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
      const person = (this._status?.daemon === 'running' ? this._status.profiles : []).filter(
        p => p.needs_person
      );
      if (person.length === 1) {
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
