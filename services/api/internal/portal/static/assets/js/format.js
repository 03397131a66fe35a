// Formatting of the API's values for people: GPR states, durations, times.

/**
 * gprStatus maps a GPR's wire status (provisioningStatus and internalState,
 * D14, plus pendingReasons) to a label and a badge kind.
 */
export function gprStatus(g) {
  const ps = g.status?.provisioningStatus || '';
  const is = g.status?.internalState || '';
  const awaiting = (g.pendingReasons || []).some((r) => r.code === 'AWAITING_APPROVAL');
  switch (ps) {
    case 'Queued':
      if (is === 'Reserved') return {label: 'Provisioning', kind: 'info'};
      if (is === 'Provisioned') return {label: 'Cancelling', kind: 'neutral'};
      if (awaiting) return {label: 'Awaiting approval', kind: 'warn'};
      return {label: 'Queued', kind: 'warn'};
    case 'Successful':
      return {label: 'Provisioned', kind: 'ok'};
    case 'EarlyReleased':
      return is === 'Released' ? {label: 'Released early', kind: 'neutral'} : {label: 'Releasing', kind: 'info'};
    case 'Complete':
      return is === 'Released' ? {label: 'Complete', kind: 'neutral'} : {label: 'Releasing', kind: 'info'};
    case 'TimedOut':
      return {label: 'Released (idle)', kind: 'neutral'};
    case 'Error':
      if (g.evictedBy) return {label: 'Evicted', kind: 'bad'};
      return {label: 'Failed', kind: 'bad'};
    default:
      return {label: ps || 'Unknown', kind: 'neutral'};
  }
}

/** isQueued: the GPR waits (it can be deleted). */
export const isQueued = (g) => g.status?.provisioningStatus === 'Queued' && g.status?.internalState !== 'Provisioned';
/** isProvisioned: the GPR holds its nodes (it can be released early). */
export const isProvisioned = (g) => g.status?.provisioningStatus === 'Successful';
/** isActive: the GPR is neither finished nor failed (name and priority can change). */
export const isActive = (g) => isQueued(g) || isProvisioned(g);

/** parseDuration reads the API's "<h>h<m>m<s>s" (and "XdYhZm") into milliseconds. */
export function parseDuration(s) {
  if (!s) return 0;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(String(s).trim());
  if (!m) return 0;
  const [, d, h, mi, se] = m.map((x) => Number(x || 0));
  return (((d * 24 + h) * 60 + mi) * 60 + se) * 1000;
}

/** duration writes milliseconds as "2d 3h", "1h 5m", "4m 10s" or "12s". */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '';
  const neg = ms < 0;
  let s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const parts = d ? [`${d}d`, `${h}h`] : h ? [`${h}h`, `${m}m`] : m ? [`${m}m`, `${s}s`] : [`${s}s`];
  return (neg ? '-' : '') + parts.join(' ');
}

/** time writes an RFC 3339 time in the user's locale, "" when unset. */
export function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getFullYear() < 2000) return '';
  return d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'});
}

/** relative writes an RFC 3339 time as "in 5m" or "3m ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  if (!Number.isFinite(t)) return '';
  const diff = t - now;
  if (Math.abs(diff) < 1500) return 'now';
  return diff > 0 ? `in ${duration(diff)}` : `${duration(-diff)} ago`;
}

/** remaining is the time left of a provisioned GPR, in milliseconds, or null. */
export function remaining(g, now = Date.now()) {
  if (!isProvisioned(g) || !g.status?.startTimestamp) return null;
  const end = new Date(g.status.startTimestamp).getTime() + parseDuration(g.exitDuration);
  return Math.max(end - now, 0);
}

/** composeDuration writes days, hours and minutes as the API's "XdYhZm". */
export function composeDuration(d, h, m) {
  return `${Number(d) || 0}d${Number(h) || 0}h${Number(m) || 0}m`;
}

/** bytesGiB writes bytes as GiB with one decimal. */
export const gib = (b) => (b / 1073741824).toFixed(1);

/** priorityBand names the band of a priority: low 1-100, medium 101-200, high 201-300. */
export function priorityBand(p) {
  return p > 200 ? 'High' : p > 100 ? 'Medium' : 'Low';
}

/** dayPlus is today plus n days as YYYY-MM-DD (UTC), the API key validity format. */
export function dayPlus(n) {
  const d = new Date(Date.now() + n * 86400000);
  return d.toISOString().slice(0, 10);
}
