/** What the status bar says: pure functions of a status answer (no DOM). */

import { IProfile, IStatus } from './api';

/** "1h12m", "7m", "45s"; "" when unknown. */
export function duration(seconds: number | null): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h >= 24) {
    return `${Math.floor(h / 24)}d${h % 24}h`;
  }
  if (h > 0) {
    return `${h}h${String(m).padStart(2, '0')}m`;
  }
  if (m > 0) {
    return `${m}m`;
  }
  return `${s}s`;
}

const OK = new Set(['fresh', 'refreshing']);

export type Level = 'ok' | 'busy' | 'warn' | 'person' | 'off';

export interface ISummary {
  text: string;
  level: Level;
  /** One line per profile (and a first line on the daemon), for the tooltip and the dialog. */
  lines: string[];
}

/** Seconds left on ``p``'s credentials ``elapsed`` seconds after the status was read. */
export function secondsLeft(p: IProfile, elapsed = 0): number | null {
  return typeof p.seconds_left === 'number' ? Math.max(0, p.seconds_left - elapsed) : null;
}

/** One profile's line: "dev: fresh, 52m left" or "dev: login required (sign-in needed)". */
export function profileLine(p: IProfile, elapsed = 0): string {
  const left = duration(secondsLeft(p, elapsed));
  let line = `${p.name}: ${p.state.replace(/_/g, ' ')}`;
  if (left && OK.has(p.state)) {
    line += `, ${left} left`;
  }
  if (p.person_action === 'mfa_code') {
    line += ' (MFA code needed)';
  } else if (p.person_action === 'sso_login') {
    line += ' (sign-in needed)';
  } else if (p.needs_person) {
    line += ' (needs a fix)';
  }
  if (p.message && !OK.has(p.state)) {
    line += ` - ${p.message}`;
  }
  return line;
}

/** The bar's text, colour level and tooltip lines, ``elapsed`` seconds after ``status`` was
 * read (the times left count down between polls). */
export function summarize(
  status: IStatus | null,
  error: string | null,
  elapsed = 0
): ISummary {
  if (status === null) {
    return {
      text: 'credd: no answer',
      level: 'warn',
      lines: [`The credd server extension did not answer: ${error ?? 'unknown error'}`]
    };
  }
  if (status.daemon === 'needs_setup') {
    return {
      text: 'credd needs setup',
      level: 'off',
      lines: [status.message || 'credd has no secret store yet: run `credd store init` in a terminal']
    };
  }
  if (status.daemon === 'stopped' && /starting/.test(status.message || '')) {
    return { text: 'credd: starting…', level: 'busy', lines: [status.message || ''] };
  }
  if (status.daemon === 'stopped') {
    return {
      text: 'credd: daemon stopped',
      level: 'off',
      lines: [status.message || 'The credd daemon is not running: `credd daemon --detach` starts it']
    };
  }
  const profiles = status.profiles || [];
  const lines = profiles.map(p => profileLine(p, elapsed));
  if (profiles.length === 0) {
    return { text: 'credd: no profiles', level: 'warn', lines: ['No profile is managed by credd'] };
  }
  const person = profiles.filter(p => p.needs_person);
  const ok = profiles.filter(p => OK.has(p.state));
  const lefts = ok.map(p => secondsLeft(p, elapsed)).filter((s): s is number => s !== null);
  const least = lefts.length ? duration(Math.min(...lefts)) : '';
  if (person.length > 0) {
    const names = person.map(p => p.name).join(', ');
    const actions = new Set(person.map(p => p.person_action));
    const what =
      actions.size > 1
        ? 'you are needed'
        : actions.has('mfa_code')
          ? 'MFA code needed'
          : actions.has('sso_login')
            ? 'sign-in needed'
            : 'needs a fix';
    return { text: `credd: ${what} (${names})`, level: 'person', lines };
  }
  const others = profiles.length - ok.length;
  let text = `credd: ${ok.length} ok`;
  if (others > 0) {
    text += ` · ${others} not`;
  }
  if (least) {
    text += ` · ${least}`;
  }
  const broken = profiles.some(p => p.state === 'error' || p.state === 'backoff');
  const level: Level = broken ? 'warn' : others > 0 ? 'busy' : 'ok';
  return { text, level, lines };
}
