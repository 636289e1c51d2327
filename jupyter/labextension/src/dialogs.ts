/**
 * The dialogs a person uses when credd needs them: the IAM Identity Center device-code login
 * (the code and the verification link are shown; no browser window is ever opened by this code,
 * the person clicks the link) and an MFA code field.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  IProfile,
  IStatus,
  loginState,
  sendMfaCode,
  startDaemon,
  startLogin
} from './api';
import { profileLine } from './format';

const POLL_MS = 2000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function errorText(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

/** The body of the login dialog: fills itself in from the server's answers and polls. */
class LoginBody extends Widget {
  readonly message = el('p', 'credd-message', 'Asking IAM Identity Center for a code…');
  readonly code = el('div', 'credd-user-code');
  readonly link = el('a', 'credd-verification-link');
  readonly state = el('p', 'credd-login-state');

  constructor(readonly profile: string) {
    super();
    this.addClass('credd-dialog');
    this.addClass('credd-login');
    this.link.target = '_blank';
    this.link.rel = 'noopener noreferrer';
    this.code.hidden = true;
    this.link.hidden = true;
    this.node.append(this.message, this.code, this.link, this.state);
  }

  showCode(userCode: string, url: string): void {
    this.message.textContent =
      `To let credd refresh "${this.profile}", open this link, sign in and check that the ` +
      'code matches:';
    this.code.textContent = userCode;
    this.code.hidden = false;
    this.link.href = url;
    this.link.textContent = url;
    this.link.hidden = false;
    this.state.textContent = 'Waiting for the sign-in…';
  }
}

/** Start a device-code login for ``profile`` and poll it until it is done, failed or closed. */
export async function loginDialog(profile: string, onDone: () => void): Promise<void> {
  const body = new LoginBody(profile);
  const dialog = new Dialog({
    title: `credd: sign in for ${profile}`,
    body,
    buttons: [Dialog.cancelButton({ label: 'Close' })]
  });
  let open = true;
  const shown = dialog.launch().then(() => {
    open = false;
  });
  try {
    const start = await startLogin(profile);
    body.showCode(start.user_code, start.verification_uri_complete || start.verification_uri);
    const deadline = Date.now() + Math.max(30, start.expires_in || 600) * 1000;
    while (open && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, POLL_MS));
      if (!open) {
        break;
      }
      const now = await loginState(start.login_id);
      if (now.state === 'done') {
        body.state.textContent = now.message || 'Signed in.';
        body.addClass('credd-done');
        onDone();
        dialog.resolve(0);
        break;
      }
      if (now.state === 'failed') {
        body.state.textContent = `The sign-in failed: ${now.message || 'no reason given'}`;
        body.addClass('credd-failed');
        break;
      }
    }
    if (open && Date.now() >= deadline) {
      body.state.textContent = 'The code expired. Close this and click the status bar again.';
      body.addClass('credd-failed');
    }
  } catch (error) {
    body.message.textContent = `credd could not start the sign-in: ${errorText(error)}`;
    body.addClass('credd-failed');
  }
  await shown;
  onDone();
}

/** The body of the MFA dialog: one code field; its value is what the dialog returns. */
class MfaBody extends Widget implements Dialog.IBodyWidget<string> {
  readonly input = el('input', 'credd-mfa-input jp-mod-styled');

  constructor(profile: string, problem: string | null) {
    super();
    this.addClass('credd-dialog');
    this.addClass('credd-mfa');
    const label = el('label', 'credd-message', `The MFA code for "${profile}":`);
    this.input.type = 'text';
    this.input.inputMode = 'numeric';
    this.input.autocomplete = 'one-time-code';
    this.input.maxLength = 6;
    this.input.placeholder = '123456';
    this.input.name = 'credd-mfa-code';
    label.append(this.input);
    this.node.append(label);
    if (problem) {
      this.node.append(el('p', 'credd-failed credd-login-state', problem));
    }
  }

  getValue(): string {
    return this.input.value.trim();
  }

  protected onAfterAttach(): void {
    this.input.focus();
  }
}

/** Ask for an MFA code until one is taken or the person cancels. */
export async function mfaDialog(profile: string, onDone: () => void): Promise<void> {
  let problem: string | null = null;
  for (;;) {
    const result = await showDialog({
      title: `credd: MFA code for ${profile}`,
      body: new MfaBody(profile, problem),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Send' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept) {
      return;
    }
    const code = result.value ?? '';
    if (!/^\d{6}$/.test(code)) {
      problem = 'An MFA code is 6 digits.';
      continue;
    }
    try {
      const answer = await sendMfaCode(profile, code);
      if (answer.ok) {
        onDone();
        return;
      }
      problem = answer.message || 'The code was not accepted.';
    } catch (error) {
      problem = errorText(error);
    }
  }
}

/** Whether the browser can do what ``p`` needs (a sign-in or a code, not a config fix). */
export function actionable(p: IProfile): boolean {
  return p.person_action === 'mfa_code' || p.person_action === 'sso_login';
}

/** Do what one profile needs from a person. */
export function actFor(p: IProfile, onDone: () => void): Promise<void> {
  const target = p.person_profile || p.name;
  return p.person_action === 'mfa_code' ? mfaDialog(target, onDone) : loginDialog(target, onDone);
}

/** Every profile, with a button for each that needs a person. */
export async function overviewDialog(
  status: IStatus | null,
  lines: string[],
  onDone: () => void
): Promise<void> {
  const body = new Widget();
  body.addClass('credd-dialog');
  body.addClass('credd-overview');
  const list = el('ul', 'credd-profiles');
  let chosen = null as IProfile | null;
  const profiles = status && status.daemon === 'running' ? status.profiles : [];
  if (profiles.length === 0) {
    for (const line of lines) {
      list.append(el('li', 'credd-profile', line));
    }
  }
  const dialog = new Dialog({
    title: 'credd',
    body,
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
  if (status && status.daemon === 'stopped') {
    const start = el('button', 'jp-mod-styled jp-mod-accept credd-start', 'Start the daemon');
    const said = el('p', 'credd-login-state');
    start.addEventListener('click', async () => {
      start.disabled = true;
      said.textContent = 'Starting…';
      try {
        const now = await startDaemon();
        said.textContent =
          now.daemon === 'running' ? 'The daemon is running.' : now.message || now.daemon;
        onDone();
      } catch (error) {
        said.textContent = errorText(error);
      }
      start.disabled = false;
    });
    body.node.append(start, said);
  }
  for (const p of profiles) {
    const item = el('li', `credd-profile credd-state-${p.state}`, profileLine(p));
    item.dataset.profile = p.name;
    if (actionable(p)) {
      const label = p.person_action === 'mfa_code' ? 'Enter MFA code' : 'Sign in';
      const button = el('button', 'jp-mod-styled jp-mod-accept credd-act', label);
      button.addEventListener('click', () => {
        chosen = p;
        dialog.resolve(0);
      });
      item.append(' ', button);
    }
    list.append(item);
  }
  body.node.append(list);
  await dialog.launch();
  if (chosen !== null) {
    await actFor(chosen, onDone);
  }
}
