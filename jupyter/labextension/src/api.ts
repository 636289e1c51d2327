/**
 * The credd server extension's HTTP API (credd/jupyter, under /credd/api/).
 *
 * Every request goes through ServerConnection.makeRequest, so the Jupyter server's token and
 * XSRF cookie are sent as for any other Jupyter request. Nothing here ever carries AWS
 * credentials: the server extension answers with states, times, device codes and messages only.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type DaemonState = 'running' | 'stopped' | 'needs_setup';
export type PersonAction = null | 'sso_login' | 'mfa_code';

export interface IProfile {
  name: string;
  state: string;
  expires_at: string | null;
  seconds_left: number | null;
  needs_person: boolean;
  person_action: PersonAction;
  /** The profile to send the login or code for (a shared session's, or this one). */
  person_profile?: string | null;
  message: string | null;
}

export interface IStatus {
  daemon: DaemonState;
  started_by_extension: boolean;
  profiles: IProfile[];
  message?: string | null;
  pid?: number | null;
}

export interface ILoginStart {
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  login_id: string;
}

export interface ILoginState {
  state: 'pending' | 'done' | 'failed';
  message: string | null;
}

export interface IMfaResult {
  ok: boolean;
  message: string | null;
}

/** An answer that was not a 2xx: its message, as the server extension wrote it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'credd', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`the Jupyter server did not answer: ${String(error)}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      (data && (data.message || data.reason)) || `${response.status} ${response.statusText}`;
    throw new ApiError(String(message), response.status);
  }
  return data as T;
}

export function getStatus(): Promise<IStatus> {
  return call<IStatus>('status');
}

export function startDaemon(): Promise<IStatus> {
  return call<IStatus>('daemon/start', { method: 'POST' });
}

export function startLogin(profile: string): Promise<ILoginStart> {
  return call<ILoginStart>(`login/${encodeURIComponent(profile)}`, { method: 'POST' });
}

export function loginState(loginId: string): Promise<ILoginState> {
  return call<ILoginState>(`login/${encodeURIComponent(loginId)}`);
}

export function sendMfaCode(profile: string, code: string): Promise<IMfaResult> {
  return call<IMfaResult>(`mfa/${encodeURIComponent(profile)}`, {
    method: 'POST',
    body: JSON.stringify({ code })
  });
}
